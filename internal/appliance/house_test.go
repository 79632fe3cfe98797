package appliance

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/bootyard/bootyard"

type pkgInfo struct {
	ImportPath string
	Dir        string
	Imports    []string
}

func listPackages(t *testing.T) []pkgInfo {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkgInfo
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkgInfo
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestImportRules enforces the architecture: services never import each
// other, profiles and images import no service, images imports nothing of
// ours but leaf helpers, and leaf helpers import nothing of ours.
func TestImportRules(t *testing.T) {
	services := map[string]bool{module + "/dhcp": true, module + "/tftpd": true, module + "/ftpd": true}
	leaves := map[string]bool{}
	for _, l := range []string{"units", "cfgerr", "fsroot", "privdrop", "limit"} {
		leaves[module+"/internal/"+l] = true
	}
	for _, p := range listPackages(t) {
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			switch {
			case services[p.ImportPath] && services[imp]:
				t.Errorf("%s imports %s: services never import each other", p.ImportPath, imp)
			case (p.ImportPath == module+"/profiles" || p.ImportPath == module+"/images") && services[imp]:
				t.Errorf("%s imports service %s", p.ImportPath, imp)
			case p.ImportPath == module+"/images" && !leaves[imp]:
				t.Errorf("images imports %s: it may import only leaf helpers", imp)
			case leaves[p.ImportPath]:
				t.Errorf("leaf helper %s imports %s", p.ImportPath, imp)
			case services[p.ImportPath] && strings.HasPrefix(imp, module+"/internal/") && !leaves[imp]:
				t.Errorf("service %s imports %s (wiring lives in internal/appliance)", p.ImportPath, imp)
			}
		}
	}
}

// TestDocs: every package has exactly one package doc, and every exported
// name (types, functions, methods on exported types, vars, consts) has a doc
// comment.
func TestDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		fset := token.NewFileSet()
		files, _ := filepath.Glob(filepath.Join(p.Dir, "*.go"))
		docs := 0
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			af, err := parser.ParseFile(fset, f, src, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if af.Doc != nil {
				docs++
			}
			checkExportedDocs(t, fset, af)
		}
		if docs != 1 {
			t.Errorf("%s has %d package doc comments, want exactly 1", p.ImportPath, docs)
		}
	}
}

func checkExportedDocs(t *testing.T, fset *token.FileSet, f *ast.File) {
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() || d.Doc != nil {
				continue
			}
			if d.Recv != nil {
				if !exportedRecv(d.Recv) {
					continue
				}
			}
			t.Errorf("%s: exported %s has no doc comment", fset.Position(d.Pos()), d.Name.Name)
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					if s.Name.IsExported() && d.Doc == nil && s.Doc == nil {
						t.Errorf("%s: exported type %s has no doc comment", fset.Position(s.Pos()), s.Name.Name)
					}
				case *ast.ValueSpec:
					for _, n := range s.Names {
						if n.IsExported() && d.Doc == nil && s.Doc == nil && s.Comment == nil {
							t.Errorf("%s: exported %s has no doc comment", fset.Position(n.Pos()), n.Name)
						}
					}
				}
			}
		}
	}
}

func exportedRecv(fl *ast.FieldList) bool {
	if len(fl.List) == 0 {
		return false
	}
	typ := fl.List[0].Type
	if s, ok := typ.(*ast.StarExpr); ok {
		typ = s.X
	}
	if g, ok := typ.(*ast.IndexExpr); ok {
		typ = g.X
	}
	id, ok := typ.(*ast.Ident)
	return ok && id.IsExported()
}
