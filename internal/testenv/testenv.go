// Package testenv gives integration tests the real parts: a fresh Postgres
// database per test package (migrated, dropped at the end) and a client to
// the run's shared Temporal dev server, both started by `make test`.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/backflow/backflow/migrations"
	"github.com/backflow/backflow/store"
)

// Env is the package's share of the run's services.
type Env struct {
	Pool      *pgxpool.Pool
	Store     *store.Store
	DBURL     string
	Temporal  client.Client
	TaskQueue string // unique to the package so workers never steal each other's tasks
	Logger    *slog.Logger
}

var (
	shared   *Env
	adminURL string
	dbName   string
	mu       sync.Mutex
)

// Main wraps a package's TestMain: it creates and migrates the package's
// database, runs the tests and drops the database. It fails (never skips)
// when the services are missing.
func Main(m *testing.M) {
	code, err := setupAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setupAndRun(m *testing.M) (int, error) {
	adminURL = os.Getenv("BACKFLOW_TEST_DATABASE_URL")
	addr := os.Getenv("BACKFLOW_TEST_TEMPORAL_ADDRESS")
	if adminURL == "" || addr == "" {
		return 1, fmt.Errorf("integration tests need Postgres and Temporal: run `make test`, which starts both, " +
			"or set BACKFLOW_TEST_DATABASE_URL and BACKFLOW_TEST_TEMPORAL_ADDRESS")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	suffix := randomSuffix()
	dbName = "bf_" + packageName() + "_" + suffix
	admin, err := pgxpool.New(ctx, adminURL)
	if err != nil {
		return 1, fmt.Errorf("connect admin database: %w", err)
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
		return 1, fmt.Errorf("create database: %w", err)
	}
	defer func() {
		dropCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.Exec(dropCtx, "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)")
	}()
	dbURL := withDatabase(adminURL, dbName)
	pool, err := store.Connect(ctx, dbURL, 40)
	if err != nil {
		return 1, err
	}
	defer pool.Close()
	if err := migrations.Up(ctx, pool); err != nil {
		return 1, err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tc, err := client.Dial(client.Options{HostPort: addr, Logger: log.NewStructuredLogger(logger)})
	if err != nil {
		return 1, fmt.Errorf("dial temporal: %w", err)
	}
	defer tc.Close()
	shared = &Env{Pool: pool, Store: store.New(pool), DBURL: dbURL, Temporal: tc,
		TaskQueue: "test-" + packageName() + "-" + suffix, Logger: logger}
	return m.Run(), nil
}

// Get returns the package's environment; the package must call Main from TestMain.
func Get(tb testing.TB) *Env {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if shared == nil {
		tb.Fatal("testenv.Main was not called from TestMain")
	}
	return shared
}

// AdminURL is the URL of the maintenance database, for tests that restart Postgres.
func AdminURL() string { return adminURL }

func withDatabase(raw, db string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + db
	return u.String()
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// packageName names the test binary's package, for readable database names.
func packageName() string {
	name := strings.TrimSuffix(filepath.Base(os.Args[0]), ".test")
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, strings.ToLower(name))
	if name == "" {
		_, file, _, _ := runtime.Caller(0)
		name = filepath.Base(filepath.Dir(file))
	}
	return name
}
