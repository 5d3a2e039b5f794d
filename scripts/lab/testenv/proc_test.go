package testenv

import (
	"os"
	"testing"
	"time"
)

// TestProcessCPU: this process's CPU time grows while it spins, and a missing process is an error.
func TestProcessCPU(t *testing.T) {
	before, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
		x++
	}
	after, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after <= before || (after-before)%ClockTick != 0 {
		t.Fatalf("CPU %v -> %v after spinning %d rounds for 100 ms: want growth in whole ticks", before, after, x)
	}
	if _, err := ProcessCPU(1 << 30); err == nil {
		t.Fatal("ProcessCPU of a missing process: no error")
	}
}
