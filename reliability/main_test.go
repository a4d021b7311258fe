// The reliability scenarios: concurrency, crashes, restarts, provider faults,
// webhook outages, bad input and tenant isolation, each followed by the
// invariant checker (internal/invariants). Postgres and Temporal are the
// run's shared ones (make test starts them), except where a scenario
// restarts them: then it starts its own.
package reliability_test

import (
	"testing"

	"github.com/backflow/backflow/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
