package logfield_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The packages whose log lines make up warren's log contract: every field
// name they write must be one of this package's constants, never a string
// literal or a name of their own, so that a name is spelled once and a
// query for it finds the lines of every package.
var products = []string{
	"github.com/warrenmq/warren/broker",
	"github.com/warrenmq/warren/worker",
	"github.com/warrenmq/warren/daemon",
	"github.com/warrenmq/warren/deadletter",
	"github.com/warrenmq/warren/topology",
	"github.com/warrenmq/warren/metrics",
	"github.com/warrenmq/warren/scheduler",
	"github.com/warrenmq/warren/tracing",
	"github.com/warrenmq/warren/inbox",
	"github.com/warrenmq/warren/unique",
	"github.com/warrenmq/warren/saga",
	"github.com/warrenmq/warren/cmd/warren",
}

// TestFieldNamesFromLogfield fails on a zerolog field whose key, in the
// product code, is not a constant of this package: a string literal, or a
// package's own constant (tests may spell the names out: they check them).
func TestFieldNamesFromLogfield(t *testing.T) {
	l := list(t, products...)
	for _, path := range products {
		for _, hit := range foreignKeys(t, l, path) {
			t.Errorf("%s: log field name %s not named by internal/logfield; use its constant (add it there if it is new)", hit.pos, hit.key)
		}
	}
}

// TestForeignKeysFound checks the check: a literal key, on an event or
// on a logger's context, or a key of the package's own, is found; a key
// from this package, a message, or a method of another type with the same
// name is not.
func TestForeignKeysFound(t *testing.T) {
	const src = `package p

import (
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/internal/logfield"
)

type other struct{}

const fieldQueue = "queue"

func (other) Str(key, val string) {}

func f(log zerolog.Logger, id string) {
	log.Info().Str("job_id", id).Msg("a literal key")
	log.Debug().Str(logfield.JobID, id).Int(logfield.Attempt, 1).Msg("constant keys")
	_ = log.With().Str("queue", id).Logger()
	log.Warn().
		Dur("retry_in", 0).
		Msg("a literal key on a continued line")
	log.Info().Str(fieldQueue, id).Msg("a key of its own")
	key := "job_type"
	log.Info().Str(key, id).Msg("a variable key")
	other{}.Str("not_zerolog", id)
}
`
	l := list(t, "github.com/rs/zerolog", "github.com/warrenmq/warren/internal/logfield")
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, hit := range check(t, l, fset, "p", []*ast.File{f}) {
		got = append(got, fmt.Sprintf("%d:%s", hit.pos.Line, hit.key))
	}
	want := []string{`16:"job_id"`, `18:"queue"`, `20:"retry_in"`, `22:fieldQueue`, `24:key`}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("found %v, want %v", got, want)
	}
}

type hit struct {
	pos token.Position
	key string
}

// pkgs is what go list says of a set of packages and their dependencies.
type pkgs map[string]listed

type listed struct {
	ImportPath string
	Dir        string
	Export     string
	GoFiles    []string
	ImportMap  map[string]string
}

// list runs go list -export on the packages named, so that they can be
// type-checked from their dependencies' export data.
func list(t *testing.T, patterns ...string) pkgs {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the packages' dependencies")
	}
	cmd := exec.Command("go", append([]string{"list", "-export", "-deps", "-json"}, patterns...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	l := pkgs{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		l[p.ImportPath] = p
	}
	return l
}

// foreignKeys parses and type-checks a package's product files (not its
// tests) and returns the keys it does not take from this package.
func foreignKeys(t *testing.T, l pkgs, path string) []hit {
	t.Helper()
	p, ok := l[path]
	if !ok {
		t.Fatalf("go list did not list %s", path)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range p.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return check(t, l, fset, path, files)
}

// check type-checks files and returns each call of a zerolog Event's or
// Context's method whose first parameter is the field's key (Str, Int,
// Dur, Stringer, Dict, …) made with a key that is not a logfield constant.
func check(t *testing.T, l pkgs, fset *token.FileSet, path string, files []*ast.File) []hit {
	t.Helper()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		p, ok := l[path]
		if !ok || p.Export == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(p.Export)
	})
	// Resolve vendored or replaced paths as the package itself sees them.
	var importMap map[string]string
	if p, ok := l[path]; ok {
		importMap = p.ImportMap
	}
	conf := types.Config{Importer: importerFrom(func(path string) (*types.Package, error) {
		if to, ok := importMap[path]; ok {
			path = to
		}
		return imp.Import(path)
	})}
	info := &types.Info{
		Selections: map[*ast.SelectorExpr]*types.Selection{},
		Uses:       map[*ast.Ident]types.Object{},
	}
	if _, err := conf.Check(path, fset, files, info); err != nil {
		t.Fatalf("type-check %s: %v", path, err)
	}
	var hits []hit
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !isFieldMethod(info.Selections[sel]) {
				return true
			}
			if key := call.Args[0]; !fromLogfield(info, key) {
				hits = append(hits, hit{pos: fset.Position(key.Pos()), key: types.ExprString(key)})
			}
			return true
		})
	}
	return hits
}

// fromLogfield reports whether key is a constant of this package, named
// as logfield.X.
func fromLogfield(info *types.Info, key ast.Expr) bool {
	sel, ok := key.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	c, ok := info.Uses[sel.Sel].(*types.Const)
	return ok && c.Pkg() != nil && c.Pkg().Path() == "github.com/warrenmq/warren/internal/logfield"
}

// isFieldMethod reports whether s is a method of zerolog's Event or
// Context whose first parameter is a field's key.
func isFieldMethod(s *types.Selection) bool {
	if s == nil || s.Kind() != types.MethodVal {
		return false
	}
	recv := s.Recv()
	if ptr, ok := recv.(*types.Pointer); ok {
		recv = ptr.Elem()
	}
	named, ok := recv.(*types.Named)
	if !ok || named.Obj().Pkg() == nil || named.Obj().Pkg().Path() != "github.com/rs/zerolog" {
		return false
	}
	if name := named.Obj().Name(); name != "Event" && name != "Context" {
		return false
	}
	params := s.Obj().Type().(*types.Signature).Params()
	return params.Len() > 0 && params.At(0).Name() == "key"
}

type importerFrom func(path string) (*types.Package, error)

func (f importerFrom) Import(path string) (*types.Package, error) { return f(path) }
