package store_test

import (
	"testing"

	"github.com/backflow/backflow/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
