// Package integration runs refunds end to end over the real stack: API,
// Temporal dev server, worker, Postgres and the sandbox PSP over HTTP.
package integration

import (
	"testing"

	"github.com/backflow/backflow/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
