// Package images keeps the store of staged OS images: one directory per
// image with a manifest of every file's size and sha256, added through a
// staging directory and published by an atomic rename, so readers never see
// a half-added image.
//
// # Layout
//
// The store is one directory (images.dir, default <state_dir>/images):
//
//	<dir>/<name>/<path>                  the image's files, regular files, mode 0644
//	<dir>/<name>/.bootyard-manifest.json its manifest (path, size, sha256, role of each file)
//	<dir>/.staging/                      adds in progress and removals; debris is cleaned by Open
//	<dir>/.lock                          serialises publishing between processes
//
// # Atomicity
//
// Add copies every source into a private directory under .staging while
// hashing it, writes the manifest, fsyncs the files and directories, and only
// then makes the image visible with one rename(2) on the same file system.
// Replacing an image swaps the new directory with the old one in one
// renameat2(RENAME_EXCHANGE) call where the file system supports it (two
// renames otherwise, leaving a window of a few microseconds in which the name
// is missing). A reader therefore sees either no image, the complete old one,
// or the complete new one, file by file; a file it already has open keeps
// reading the old content. The old directory is deleted only after
// AddOptions.ReplaceGrace (1 s by default), because a path lookup that is
// half-way through it (os.Root resolves one component at a time) would
// otherwise fail with "not found". An add that is
// killed leaves only debris under .staging, which the next Open removes (an
// add still running in another process holds a lock on its staging directory
// and is left alone).
//
// # What readers can reach
//
// FS returns a read-only fs.FS of the published images ("<name>/<path>"),
// opened through an os.Root on the store directory: names cannot leave the
// store, and symlinks that point outside it are refused by the kernel-backed
// lookup. The staging area, the lock and the manifests are hidden. Regular
// files are handed out as *os.File, so servers can use sendfile(2).
package images
