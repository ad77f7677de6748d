package e2e

import (
	"testing"

	"github.com/roomcast/roomcast/e2e/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }
