// Command soak runs Backflow under mixed load with random faults for a
// while, then checks the invariants (internal/invariants) and exits 1 on
// any violation. make soak runs it through scripts/soak.sh, which starts a
// Postgres and a Temporal dev server for it.
//
//	DATABASE_URL=... TEMPORAL_ADDRESS=... go run ./internal/rig/cmd/soak -duration 2m
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/migrations"
	"github.com/backflow/backflow/store"
	"github.com/backflow/backflow/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) (bool, error) {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	duration := fs.Duration("duration", envDuration("DURATION", 2*time.Minute), "how long the load runs (env DURATION)")
	clients := fs.Int("clients", 8, "concurrent API clients")
	merchants := fs.Int("merchants", 3, "merchants")
	seed := fs.Uint64("seed", 0, "random seed (0: time-based)")
	progress := fs.Duration("progress", 10*time.Second, "progress line interval")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	dbURL, addr := os.Getenv("DATABASE_URL"), os.Getenv("TEMPORAL_ADDRESS")
	if dbURL == "" || addr == "" {
		return false, errors.New("set DATABASE_URL and TEMPORAL_ADDRESS (make soak starts both)")
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	pool, err := store.Connect(ctx, dbURL, 40)
	if err != nil {
		return false, err
	}
	defer pool.Close()
	if err := migrations.Up(ctx, pool); err != nil {
		return false, err
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	tc, err := client.DialContext(ctx, client.Options{HostPort: addr, Logger: log.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		return false, fmt.Errorf("dial temporal at %s: %w", addr, err)
	}
	defer tc.Close()
	if err := worker.EnsureSearchAttributes(ctx, tc, client.DefaultNamespace); err != nil {
		return false, err
	}
	fmt.Printf("soak: %s of mixed load with random faults, %d clients, %d merchants, seed %d\n", *duration, *clients, *merchants, *seed)
	res, err := rig.Soak(ctx, rig.SoakOptions{
		Pool: pool,
		Rig: rig.RigOptions{Store: store.New(pool), Temporal: tc, TaskQueue: "soak-" + uuid.NewString()[:8],
			Logger: logger},
		Duration: *duration, Clients: *clients, Merchants: *merchants, Seed: *seed,
		Progress: os.Stdout, ProgressEvery: *progress,
	})
	if err != nil {
		return false, err
	}
	rep := res.Invariants
	fmt.Printf("\nsoak finished in %s: %d requests, %d refunds accepted, %d worker restarts, %d provider outages\n",
		res.Elapsed.Round(time.Second), res.Requests, res.Accepted, res.WorkerRestarts, res.Outages)
	fmt.Printf("faults injected: %s; callbacks duplicated %d, replayed late %d\n", res.Faults, res.Callbacks, res.Late)
	fmt.Printf("workflows terminated mid-refund %d (resumed by the reconciler %d); concurrent registrations of one payment %d\n",
		res.Terminations, res.Resumed, res.Registrations)
	fmt.Printf("invariants: %s\n", rep.Summary())
	for _, v := range rep.Violations {
		fmt.Printf("  VIOLATION %s\n", v)
	}
	if res.ServerErrors > 0 {
		fmt.Printf("API answered %d unexpected 5xx\n", res.ServerErrors)
	}
	for _, u := range res.Unexpected {
		fmt.Printf("  UNEXPECTED %s\n", u)
	}
	if res.OK() {
		fmt.Println("soak: PASS")
		return true, nil
	}
	fmt.Println("soak: FAIL")
	return false, nil
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}
