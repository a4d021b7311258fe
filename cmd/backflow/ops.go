package main

import (
	"context"
	"errors"

	"github.com/backflow/backflow/config"
)

// runOps is the ops CLI.
func runOps(ctx context.Context, cfg config.Config, args []string) error {
	return errors.New("ops: not available yet")
}
