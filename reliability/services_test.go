package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/migrations"
	"github.com/backflow/backflow/reliability"
	"github.com/backflow/backflow/store"
)

// Processes this package starts itself: the backflow binary (API and worker
// subprocesses, to SIGKILL them), and a Temporal dev server and a Postgres
// of its own, for the scenarios that restart them (the run's shared ones
// must never be restarted).

// repoBin is <repo>/bin, where make tools puts the Temporal CLI.
func repoBin(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "bin", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run `make tools` (make test builds it): %v", p, err)
	}
	return p
}

// process is a child process a test can SIGKILL.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startProcess starts name; its stderr goes to stderr (nil: the test's own).
func startProcess(t *testing.T, stderr io.Writer, name string, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	if stderr == nil {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	return p
}

// kill SIGKILLs the process and waits for it to be gone.
func (p *process) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// temporalServer is a Temporal dev server with a file database, owned by one test.
type temporalServer struct {
	bin  string
	db   string
	port int
	proc *process
}

func startTemporalServer(t *testing.T) *temporalServer {
	t.Helper()
	s := &temporalServer{bin: repoBin(t, "temporal"), db: filepath.Join(t.TempDir(), "t.db"), port: testenv.FreePort(t)}
	s.start(t)
	return s
}

func (s *temporalServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// start runs the server on its file and port, as scripts/lib.sh start_temporal does.
func (s *temporalServer) start(t *testing.T) {
	t.Helper()
	s.proc = startProcess(t, nil, s.bin, nil, "server", "start-dev", "--db-filename", s.db, "--port", strconv.Itoa(s.port),
		"--ip", "127.0.0.1", "--headless", "--log-level", "error",
		"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=NORMAL",
		"--dynamic-config-value", "system.enableActivityEagerExecution=true",
		"--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
		"--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
		"--dynamic-config-value", "system.forceSearchAttributesCacheRefreshOnRead=false",
		"--search-attribute", "BackflowMerchantId=Keyword", "--search-attribute", "BackflowRefundStatus=Keyword",
		"--search-attribute", "BackflowProvider=Keyword", "--search-attribute", "BackflowMethod=Keyword",
		"--search-attribute", "BackflowStuck=Bool", "--search-attribute", "BackflowAmount=Int")
	err := reliability.Poll(context.Background(), 60*time.Second, "Temporal dev server on "+s.addr(), func(ctx context.Context) (bool, error) {
		if s.proc.exited() {
			return false, errors.New("the server exited")
		}
		c, err := client.DialContext(ctx, client.Options{HostPort: s.addr(), Logger: quietLogger})
		if err != nil {
			return false, err
		}
		defer c.Close()
		// NotFound means the default namespace answers.
		_, err = c.DescribeWorkflowExecution(ctx, "readiness-probe", "")
		var nf *serviceerror.NotFound
		if err != nil && !errors.As(err, &nf) {
			return false, err
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// kill SIGKILLs the server: in-flight requests and unflushed state die with it.
func (s *temporalServer) kill() { s.proc.kill() }

// dial returns a client of the server, closed with t.
func (s *temporalServer) dial(t *testing.T) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: s.addr(), Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// pgServer is a Postgres cluster in a temporary directory, owned by one test.
type pgServer struct {
	bin  string
	dir  string
	port int
}

// pgBin finds the Postgres server binaries, as scripts/lib.sh pg_bin does.
func pgBin(t *testing.T) string {
	t.Helper()
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) > 0 {
		return filepath.Dir(matches[len(matches)-1])
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	t.Fatal("the Postgres server binaries (initdb, pg_ctl) are missing: make test installs them")
	return ""
}

// asPostgres runs a Postgres binary, as the postgres user when we are root.
func asPostgres(name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

func startPostgres(t *testing.T) *pgServer {
	t.Helper()
	dir, err := os.MkdirTemp("", "backflow-reliability-pg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs a postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	p := &pgServer{bin: pgBin(t), dir: filepath.Join(dir, "data"), port: testenv.FreePort(t)}
	if out, err := asPostgres(filepath.Join(p.bin, "initdb"), "-D", p.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8",
		"--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		_ = asPostgres(filepath.Join(p.bin, "pg_ctl"), "-D", p.dir, "-m", "immediate", "-w", "stop").Run()
	})
	p.start(t)
	return p
}

// start starts the cluster; synchronous_commit stays on, so an acknowledged
// commit survives an immediate shutdown (fsync is off: the test machine's
// page cache outlives the Postgres process).
func (p *pgServer) start(t *testing.T) {
	t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off", p.port, filepath.Dir(p.dir))
	if out, err := asPostgres(filepath.Join(p.bin, "pg_ctl"), "-D", p.dir, "-l", filepath.Join(filepath.Dir(p.dir), "server.log"),
		"-w", "-t", "60", "-o", opts, "start").CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl start: %v\n%s", err, out)
	}
}

// crash stops the cluster with -m immediate: no checkpoint, every connection cut.
func (p *pgServer) crash(t *testing.T) {
	t.Helper()
	if out, err := asPostgres(filepath.Join(p.bin, "pg_ctl"), "-D", p.dir, "-m", "immediate", "-w", "stop").CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

func (p *pgServer) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, db)
}

// database creates and migrates a database and returns a pool on it.
func (p *pgServer) database(t *testing.T, name string) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	admin, err := store.Connect(ctx, p.url("postgres"), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	url := p.url(name)
	pool, err := store.Connect(ctx, url, 30)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := migrations.Up(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return pool, url
}

// tcpProxy forwards TCP to target and can cut it: refuse closes every
// connection at once, hold accepts new ones and never answers.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  string // "pass", "refuse", "hold"
	conns map[net.Conn]struct{}
}

func startTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, mode: "pass", conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.setMode("refuse") })
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

// setMode switches the proxy; leaving "pass" cuts every open connection.
func (p *tcpProxy) setMode(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
	if mode != "pass" {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		switch mode {
		case "refuse":
			c.Close()
		case "hold":
			// Keep it open and silent until the mode changes (setMode closes it).
		default:
			go p.pipe(c)
		}
	}
}

func (p *tcpProxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
	c.Close()
}

// waitHTTP waits until url answers 200.
func waitHTTP(t *testing.T, url string, timeout time.Duration) {
	t.Helper()
	err := reliability.Poll(context.Background(), timeout, "GET "+url, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// sharedTemporalAddress is the run's shared dev server, for subprocesses.
func sharedTemporalAddress() string { return os.Getenv("BACKFLOW_TEST_TEMPORAL_ADDRESS") }

// quietLogger keeps the SDK's reconnect warnings out of test output.
var quietLogger = log.NewStructuredLogger(slog.New(slog.DiscardHandler))
