package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var build struct {
	once sync.Once
	path string
	err  error
}

// BackflowBinary builds cmd/backflow once per test binary, for tests that run
// the API or the worker as processes of their own (to SIGKILL them).
func BackflowBinary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "backflow-bin")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "backflow")
		out, err := exec.Command("go", "build", "-o", build.path, "github.com/backflow/backflow/cmd/backflow").CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatalf("build backflow: %v", build.err)
	}
	return build.path
}
