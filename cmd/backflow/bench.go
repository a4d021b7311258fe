package main

import (
	"context"
	"errors"

	"github.com/backflow/backflow/config"
)

// runBench measures the refund path.
func runBench(ctx context.Context, cfg config.Config, args []string) error {
	return errors.New("bench: not available yet")
}
