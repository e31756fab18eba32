// Package internal_test keeps docs/architecture.md true to the packages under internal/.
package internal_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/kubectl-pvbackup/kubectl-pvbackup/"

// packages maps each package under internal/ ("internal/repo") to the imports of its non-test
// files.
func packages(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(filepath.Join("internal", filepath.Dir(path)))
		imports := out[pkg]
		for _, im := range f.Imports {
			p, err := strconv.Unquote(im.Path.Value)
			if err != nil {
				return err
			}
			imports = append(imports, strings.TrimPrefix(p, module))
		}
		out[pkg] = imports
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 10 {
		t.Fatalf("found only %d packages under internal/: is the test run from internal/?", len(out))
	}
	return out
}

// TestArchitecturePage: every package under internal/ is named on docs/architecture.md (as
// `internal/<name>`), and the page names none that is gone.
func TestArchitecturePage(t *testing.T) {
	page, err := os.ReadFile("../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(page)
	pkgs := packages(t)
	var names []string
	for p := range pkgs {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		if !strings.Contains(text, "`"+p+"`") {
			t.Errorf("docs/architecture.md does not name package %s: add it to its layer (as `%s`)", p, p)
		}
	}
	for _, field := range strings.FieldsFunc(text, func(r rune) bool { return r == '`' || r == ' ' || r == '\n' || r == '(' || r == ')' || r == ',' }) {
		if strings.HasPrefix(field, "internal/") && field != "internal/" && !strings.HasSuffix(field, ".go") && !strings.Contains(field, "/...") {
			if _, ok := pkgs[strings.TrimSuffix(field, "/")]; !ok {
				t.Errorf("docs/architecture.md names %s, which is no package under internal/", field)
			}
		}
	}
	if n := strings.Count(text, "\n"); n > 150 {
		t.Errorf("docs/architecture.md has %d lines; keep it under 150", n)
	}
}

// TestLayers: the rules the page states — only cli reads the command line (cobra, pflag, and the
// packages that bring them in: cli-runtime's genericclioptions, client-go's clientcmd, so that
// `go list -deps` of no other package shows them), and of the engines only volumes, which holds
// the plugin's side of the contract, imports mover.
func TestLayers(t *testing.T) {
	for pkg, imports := range packages(t) {
		for _, im := range imports {
			switch {
			case flagPackage(im) && pkg != "internal/cli":
				t.Errorf("%s imports %s: only internal/cli knows the command line", pkg, im)
			case im == "internal/mover" && pkg != "internal/cli" && pkg != "internal/volumes":
				t.Errorf("%s imports internal/mover: open repositories with repo.Service; only volumes speaks the mover's contract", pkg)
			}
		}
	}
}

// flagPackage says whether an import is, or brings in, the command line's flag packages.
func flagPackage(im string) bool {
	for _, p := range []string{"github.com/spf13/cobra", "github.com/spf13/pflag", "k8s.io/cli-runtime/pkg/genericclioptions", "k8s.io/client-go/tools/clientcmd"} {
		if im == p || strings.HasPrefix(im, p+"/") {
			return true
		}
	}
	return false
}

// TestGoldenConvention: golden files and shared fixtures live in the root testdata/ and are
// reached through test/golden (golden.Path, golden.Assert, -update); a package's own testdata/
// holds only its inputs and Go's fuzz corpora, and holds no golden file.
func TestGoldenConvention(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if strings.Contains(filepath.ToSlash(path), "testdata/") && strings.Contains(d.Name(), ".golden") {
			t.Errorf("internal/%s: golden files go in the root testdata/, through test/golden", path)
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(src), `"../../`+`testdata/`) {
			t.Errorf("internal/%s reads ../../testdata/ by path: use golden.Path (test/golden)", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
