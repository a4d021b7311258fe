package main

import (
	"context"
	"net"
	"os"

	"github.com/backflow/backflow/config"
	"github.com/backflow/backflow/ops"
)

// runOps is the ops CLI: `backflow ops <command>`, a client of the ops API.
// BACKFLOW_URL (default: this host's API on BACKFLOW_HTTP_ADDR's port,
// http://127.0.0.1:8080) and BACKFLOW_OPS_KEY say which API and which key;
// the dev stack writes both to .dev/demo.env.
func runOps(ctx context.Context, cfg config.Config, args []string) error {
	url := os.Getenv("BACKFLOW_URL")
	if url == "" {
		url = "http://127.0.0.1:8080"
		if _, port, err := net.SplitHostPort(cfg.HTTPAddr); err == nil && port != "" {
			url = "http://127.0.0.1:" + port
		}
	}
	return ops.Run(ctx, args, ops.Options{URL: url, Key: os.Getenv("BACKFLOW_OPS_KEY"), Stdout: os.Stdout})
}
