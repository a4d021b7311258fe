package webhooks_test

import (
	"testing"

	"github.com/backflow/backflow/internal/testenv"
)

// TestMain gives the integration tests a fresh database and task queue; the
// unit tests of the package run in the same binary.
func TestMain(m *testing.M) { testenv.Main(m) }
