package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// Verify re-hashes the named images (every published image when names is
// empty) and returns every problem found: files missing, of the wrong size,
// with the wrong sha256, unreadable, present but not in the manifest, and
// image directories without a valid manifest. A name that is not published
// is a "missing" problem too. The error is only for failures of the store
// itself or cancellation.
func (s *Store) Verify(ctx context.Context, names ...string) ([]Problem, error) {
	if len(names) == 0 {
		ents, err := s.readDir(".")
		if err != nil {
			return nil, fmt.Errorf("images: verify: %w", err)
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			names = append(names, e.Name())
		}
	}
	var probs []Problem
	buf := make([]byte, copyChunk)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return probs, fmt.Errorf("images: verify: %w", err)
		}
		if err := ValidName(name); err != nil {
			probs = append(probs, Problem{Image: name, Kind: "missing", Msg: err.Error()})
			continue
		}
		fi, err := s.root.Lstat(name)
		if err != nil {
			probs = append(probs, Problem{Image: name, Kind: "missing", Msg: "no such image"})
			continue
		}
		if !fi.IsDir() {
			probs = append(probs, Problem{Image: name, Kind: "manifest", Msg: "not an image directory"})
			continue
		}
		im, err := s.readManifest(name)
		if err != nil {
			msg := err.Error()
			if errors.Is(err, fs.ErrNotExist) {
				msg = "no manifest"
			}
			probs = append(probs, Problem{Image: name, Kind: "manifest", Msg: msg})
			continue
		}
		p, err := s.verifyImage(ctx, im, buf)
		probs = append(probs, p...)
		if err != nil {
			return probs, err
		}
	}
	return probs, nil
}

func (s *Store) verifyImage(ctx context.Context, im *Image, buf []byte) ([]Problem, error) {
	var probs []Problem
	listed := make(map[string]bool, len(im.Files))
	for _, f := range im.Files {
		listed[f.Path] = true
		p := im.Name + "/" + f.Path
		fh, err := s.root.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			probs = append(probs, Problem{Image: im.Name, Path: f.Path, Kind: "missing", Msg: "file missing"})
			continue
		}
		if err != nil {
			probs = append(probs, Problem{Image: im.Name, Path: f.Path, Kind: "unreadable", Msg: err.Error()})
			continue
		}
		fi, err := fh.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			fh.Close()
			probs = append(probs, Problem{Image: im.Name, Path: f.Path, Kind: "unreadable", Msg: "not a regular file"})
			continue
		}
		h := sha256.New()
		n, err := copyHashing(ctx, discard{}, fh, h, buf, func(int64) {})
		fh.Close()
		if err != nil {
			if ctx.Err() != nil {
				return probs, fmt.Errorf("images: verify: %w", ctx.Err())
			}
			probs = append(probs, Problem{Image: im.Name, Path: f.Path, Kind: "unreadable", Msg: err.Error()})
			continue
		}
		if n != f.Size {
			probs = append(probs, Problem{Image: im.Name, Path: f.Path, Kind: "size", Msg: fmt.Sprintf("size %d, manifest says %d", n, f.Size)})
			continue
		}
		if sum := hex.EncodeToString(h.Sum(nil)); sum != f.SHA256 {
			probs = append(probs, Problem{Image: im.Name, Path: f.Path, Kind: "corrupt", Msg: fmt.Sprintf("sha256 %s, manifest says %s", sum, f.SHA256)})
		}
	}
	// Files on disk the manifest does not list.
	var extra []string
	err := fs.WalkDir(s.root.FS(), im.Name, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			extra = append(extra, strings.TrimPrefix(p, im.Name+"/")+" (unreadable: "+err.Error()+")")
			return nil
		}
		if d.IsDir() {
			return nil
		}
		rel := strings.TrimPrefix(p, im.Name+"/")
		if rel == ManifestName || listed[rel] {
			return nil
		}
		extra = append(extra, rel)
		return nil
	})
	if err != nil {
		return probs, fmt.Errorf("images: verify %q: %w", im.Name, err)
	}
	sort.Strings(extra)
	for _, e := range extra {
		probs = append(probs, Problem{Image: im.Name, Path: e, Kind: "extra", Msg: "file not in the manifest"})
	}
	return probs, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
