package integration

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/internal/testenv"
)

// The docs are read from the repository root.
const root = ".."

func docs(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "README.md"), filepath.Join(root, "providers", "sandbox", "README.md"))
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = string(b)
	}
	return out
}

// fencedAfter is the first fenced block of lang after heading in doc.
func fencedAfter(t *testing.T, doc, heading, lang string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, heading)
	if !ok {
		t.Fatalf("no heading %q", heading)
	}
	_, rest, ok = strings.Cut(rest, "```"+lang+"\n")
	if !ok {
		t.Fatalf("no %s block after %q", lang, heading)
	}
	block, _, _ := strings.Cut(rest, "\n```")
	return block
}

// TestREADMEOnboardingRuns runs the README's onboarding, from a new merchant
// to its first refund, as a user would paste it (bash, curl, jq and
// bin/backflow), against a running API.
func TestREADMEOnboardingRuns(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	block := fencedAfter(t, docs(t)[filepath.Join(root, "README.md")], "### Onboarding a merchant", "sh")
	// .dev/demo.env is what make dev writes; the test's stack stands in for it.
	block = strings.Replace(block, "source .dev/demo.env", ":", 1)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(testenv.BackflowBinary(t), filepath.Join(dir, "bin", "backflow")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BACKFLOW_URL="+s.APIURL, "BACKFLOW_OPS_KEY="+s.OpsKey)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the README's onboarding fails: %v\n%s", err, out.String())
	}
	for _, want := range []string{`"status":"CAPTURED"`, `"status":"PENDING"`, `"refundValue":{"amount":2500,"currency":"EUR"}`,
		"checkout-backend", "payments-platform"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the onboarding's output lacks %s:\n%s", want, out.String())
		}
	}
}

// goName is a Backflow identifier as the docs write it: `pkg.Name`,
// `pkg.Method` (of one of its types), `pkg.Type.Method`, or `pkg.Prefix*`.
var goName = regexp.MustCompile("`((activities|app|config|metrics|ops|providers|refund|refunds|sandbox|server|store|webhooks|worker|workflows)" +
	`\.[A-Z]\w*(\.[A-Z]\w*)?)(\*?)`)

// TestDocsNameRealCode: every Go name the docs cite exists, and every
// setting they name is one the code reads (and the reverse for config).
func TestDocsNameRealCode(t *testing.T) {
	exported := map[string]bool{}
	dirs := []string{"activities", "app", "config", "metrics", "ops", "providers", "providers/sandbox", "refund", "refunds",
		"server", "store", "webhooks", "worker", "workflows"}
	for i := range dirs {
		dirs[i] = filepath.Join(root, dirs[i])
	}
	// The docs also cite the Temporal SDK's worker package (worker.Options).
	sdk, err := exec.Command("go", "list", "-f", "{{.Dir}}", "go.temporal.io/sdk/worker").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range append(dirs, strings.TrimSpace(string(sdk))) {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(file, "_test.go") {
				collect(f.Name.Name, f, exported)
				continue
			}
			// Docs cite tests as `pkg.TestName`, whichever test package holds them.
			for _, d := range f.Decls {
				if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, "Test") {
					exported[strings.TrimSuffix(f.Name.Name, "_test")+"."+fn.Name.Name] = true
				}
			}
		}
	}
	code := sourceText(t)
	for file, text := range docs(t) {
		for _, m := range goName.FindAllStringSubmatch(text, -1) {
			if !exported[m[1]] && !(m[4] == "*" && anyWithPrefix(exported, m[1])) {
				t.Errorf("%s cites %s, which the code does not have", file, m[1]+m[4])
			}
		}
		for _, v := range regexp.MustCompile(`BACKFLOW_[A-Z_]+[A-Z]`).FindAllString(text, -1) {
			if !strings.Contains(code, v) {
				t.Errorf("%s names %s, which nothing reads", file, v)
			}
		}
	}
	config, err := os.ReadFile(filepath.Join(root, "config", "config.go"))
	if err != nil {
		t.Fatal(err)
	}
	readme := docs(t)[filepath.Join(root, "README.md")]
	for _, m := range regexp.MustCompile(`Env\("(BACKFLOW_[A-Z_]+)"|env\("(BACKFLOW_[A-Z_]+)"|Getenv\("(BACKFLOW_[A-Z_]+)"`).FindAllStringSubmatch(string(config), -1) {
		v := m[1] + m[2] + m[3]
		if !strings.Contains(readme, "`"+v+"`") {
			t.Errorf("the README's configuration lacks %s", v)
		}
	}
}

// collect records a package's exported top-level names and methods as
// "pkg.Name" and "pkg.Type.Method".
func collect(pkg string, f *ast.File, out map[string]bool) {
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() {
				continue
			}
			if d.Recv == nil {
				out[pkg+"."+d.Name.Name] = true
				continue
			}
			recv := d.Recv.List[0].Type
			if star, ok := recv.(*ast.StarExpr); ok {
				recv = star.X
			}
			if id, ok := recv.(*ast.Ident); ok {
				out[pkg+"."+id.Name+"."+d.Name.Name] = true
				out[pkg+"."+d.Name.Name] = true // store.CreateRefund: the Store's
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					out[pkg+"."+s.Name.Name] = true
					if st, ok := s.Type.(*ast.StructType); ok {
						for _, fld := range st.Fields.List {
							for _, n := range fld.Names {
								out[pkg+"."+s.Name.Name+"."+n.Name] = true
							}
						}
					}
				case *ast.ValueSpec:
					for _, n := range s.Names {
						out[pkg+"."+n.Name] = true
					}
				}
			}
		}
	}
}

// sourceText is every Go, shell, compose and make file of the repository,
// where settings are read.
func sourceText(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin" || d.Name() == ".dev" || d.Name() == "tools") {
			return filepath.SkipDir
		}
		// Tests count: the docs name the settings they read too (BACKFLOW_TEST_*).
		switch filepath.Ext(path) {
		case ".go", ".sh", ".yml", ".yaml":
		default:
			if name := filepath.Base(path); name != "Makefile" && name != "run" {
				return nil
			}
		}
		raw, err := os.ReadFile(path)
		if err == nil {
			b.Write(raw)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func anyWithPrefix(names map[string]bool, prefix string) bool {
	for n := range names {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}
