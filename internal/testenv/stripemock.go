package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// RepoBin finds a tool the test scripts install: $envVar when set, else
// <repository root>/bin/name. install says how to get it when missing.
func RepoBin(name, envVar, install string) (string, error) {
	if bin := os.Getenv(envVar); bin != "" {
		return bin, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.mod above the test directory")
		}
		dir = parent
	}
	bin := filepath.Join(dir, "bin", name)
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s not found at %s; %s, or set %s: %w", name, bin, install, envVar, err)
	}
	return bin, nil
}

// StartStripeMock runs the official stripe-mock on ports the system picks, reads the HTTP
// address from its log and waits until it answers.
func StartStripeMock() (string, *exec.Cmd, error) {
	bin, err := RepoBin("stripe-mock", "STRIPE_MOCK_BIN",
		"install it with `GOBIN=$PWD/bin go install github.com/stripe/stripe-mock@v0.203.0` in the repository root")
	if err != nil {
		return "", nil, err
	}
	out, logw, err := os.Pipe()
	if err != nil {
		return "", nil, fmt.Errorf("create log pipe: %w", err)
	}
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:", "-https-addr", "127.0.0.1:")
	cmd.Stdout, cmd.Stderr = logw, logw
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start %s: %w", bin, err)
	}
	logw.Close() // the child holds its own copy

	addr := make(chan string, 1)
	go func() {
		const prefix = "Listening for HTTP at address: "
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), prefix); ok {
				addr <- a
			}
		}
		close(addr)
	}()
	stop := func(err error) (string, *exec.Cmd, error) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return "", nil, err
	}
	deadline := time.After(30 * time.Second)
	var base string
	select {
	case a, ok := <-addr:
		if !ok {
			return stop(errors.New("exited before listening"))
		}
		base = "http://" + a
	case <-deadline:
		return stop(errors.New("did not report its HTTP address within 30s"))
	}
	// It logs the address once listening; still, confirm it serves the API.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/refunds/re_probe", nil)
		req.Header.Set("Authorization", "Bearer sk_test_probe")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, cmd, nil
			}
		}
		select {
		case <-tick.C:
		case <-deadline:
			return stop(fmt.Errorf("not answering at %s within 30s", base))
		}
	}
}
