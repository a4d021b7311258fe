package reliability_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/migrations"
	"github.com/backflow/backflow/store"
	"github.com/backflow/backflow/workflows"
)

// Processes this package starts itself: the backflow binary (API and worker
// subprocesses, to SIGKILL them), and a Temporal (of the kind the run uses)
// and a Postgres of its own, for the scenarios that restart them (the run's
// shared ones must never be restarted).

// repoBin is <repo>/bin/name, where make tools puts the Temporal CLI.
func repoBin(t *testing.T, name string) string {
	t.Helper()
	return repoPath(t, filepath.Join("bin", name))
}

// repoPath is the absolute path of a file of the repository.
func repoPath(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", rel))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing (make test builds what goes in bin/): %v", p, err)
	}
	return p
}

// freePorts returns n distinct ports nobody listens on at the moment, from
// 12000 to 29999: below the kernel's ephemeral range, so no outgoing
// connection takes one between a kill and a restart, and below 32768, since
// temporal-server stores its membership ports as a Postgres smallint.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	seen := map[int]bool{}
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			t.Fatalf("found only %d free ports", len(ports))
		}
		p := 12000 + mrand.IntN(18000)
		if seen[p] {
			continue
		}
		seen[p] = true
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			l.Close()
			ports = append(ports, p)
		}
	}
	return ports
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

// ownTemporal says which Temporal the tests that restart one start: the
// kind the run's shared one is (BACKFLOW_TEST_TEMPORAL, set by make test).
func ownTemporal() string {
	if os.Getenv("BACKFLOW_TEST_TEMPORAL") == "server" {
		return "temporal-server"
	}
	return "Temporal dev server"
}

// temporalServer is a Temporal owned by one test: the dev server on a file
// database, or temporal-server (deploy/temporal/server.yaml) on databases of
// its own in the run's Postgres, started through scripts/temporal-server.sh.
type temporalServer struct {
	port int
	cmd  []string // the process to kill; restarting runs it again
	env  []string
	proc *process
}

func startTemporalServer(t *testing.T) *temporalServer {
	t.Helper()
	ports := freePorts(t, 10)
	s := &temporalServer{port: ports[0]}
	if ownTemporal() == "temporal-server" {
		s.setUpServer(t, ports)
	} else {
		s.cmd = []string{repoBin(t, "temporal"), "server", "start-dev", "--db-filename", filepath.Join(t.TempDir(), "t.db"),
			"--port", strconv.Itoa(s.port), "--ip", "127.0.0.1", "--headless", "--log-level", "error",
			"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=NORMAL",
			"--dynamic-config-value", "system.enableActivityEagerExecution=true",
			"--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
			"--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
			"--dynamic-config-value", "system.forceSearchAttributesCacheRefreshOnRead=false"}
		for _, k := range workflows.SearchAttributeKeys {
			s.cmd = append(s.cmd, "--search-attribute", k.GetName()+"="+k.GetValueType().String())
		}
	}
	s.run(t)
	if ownTemporal() == "temporal-server" {
		s.script(t, "init") // the namespace and search attributes, once
	}
	s.waitReady(t)
	return s
}

// setUpServer creates the server's databases (as the run's Postgres user)
// and schema, and sets its command: frontend on ports[0], the other ports
// of ports in the order of temporal_server_env in scripts/lib.sh.
func (s *temporalServer) setUpServer(t *testing.T, ports []int) {
	t.Helper()
	pg, err := url.Parse(testenv.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	suffix := strings.ToLower(rand.Text()[:8])
	db, vis := "temporal_"+suffix, "temporal_visibility_"+suffix
	password, _ := pg.User.Password()
	s.env = []string{"TEMPORAL_DB_HOST=" + pg.Hostname(), "TEMPORAL_DB_PORT=" + pg.Port(),
		"TEMPORAL_DB_USER=" + pg.User.Username(), "TEMPORAL_DB_PASSWORD=" + password,
		"TEMPORAL_DB=" + db, "TEMPORAL_VISIBILITY_DB=" + vis, "TEMPORAL_BIND_IP=127.0.0.1", "TEMPORAL_LOG_LEVEL=error",
		"TEMPORAL_DYNAMIC_CONFIG=" + repoPath(t, "deploy/temporal/dynamicconfig.yaml")}
	for i, name := range []string{"FRONTEND", "HISTORY", "MATCHING", "WORKER", "FRONTEND_HTTP", "METRICS",
		"FRONTEND_MEMBERSHIP", "HISTORY_MEMBERSHIP", "MATCHING_MEMBERSHIP", "WORKER_MEMBERSHIP"} {
		s.env = append(s.env, fmt.Sprintf("TEMPORAL_%s_PORT=%d", name, ports[i]))
	}
	t.Cleanup(func() {
		// After the server (cleanups run last-in first-out): drop what it used.
		admin, err := store.Connect(context.Background(), testenv.AdminURL(), 1)
		if err != nil {
			t.Error(err)
			return
		}
		defer admin.Close()
		for _, name := range []string{db, vis} {
			if _, err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
				t.Error(err)
			}
		}
	})
	s.script(t, "setup")
	s.cmd = []string{repoPath(t, "scripts/temporal-server.sh"), "run"}
}

// script runs scripts/temporal-server.sh step with the server's environment.
func (s *temporalServer) script(t *testing.T, step string) {
	t.Helper()
	cmd := exec.Command(repoPath(t, "scripts/temporal-server.sh"), step)
	cmd.Env = append(os.Environ(), s.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/temporal-server.sh %s: %v\n%s", step, err, out)
	}
}

// data names where the server keeps its state, for reports.
func (s *temporalServer) data() string {
	if ownTemporal() == "temporal-server" {
		return "Postgres databases and ports"
	}
	return "file and port"
}

func (s *temporalServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// start runs the server again on its database and ports, as after a crash.
func (s *temporalServer) start(t *testing.T) {
	t.Helper()
	s.run(t)
	s.waitReady(t)
}

func (s *temporalServer) run(t *testing.T) {
	t.Helper()
	s.proc = startProcess(t, nil, s.cmd[0], s.env, s.cmd[1:]...)
}

// waitReady polls until the default namespace answers.
func (s *temporalServer) waitReady(t *testing.T) {
	t.Helper()
	err := rig.Poll(context.Background(), 60*time.Second, ownTemporal()+" on "+s.addr(), func(ctx context.Context) (bool, error) {
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
	p := &pgServer{bin: pgBin(t), dir: filepath.Join(dir, "data"), port: rig.FreePort(t)}
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
	err := rig.Poll(context.Background(), timeout, "GET "+url, func(ctx context.Context) (bool, error) {
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
