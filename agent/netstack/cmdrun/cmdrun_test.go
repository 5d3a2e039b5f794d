package cmdrun

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestRefuses(t *testing.T) {
	e := Exec{}
	for _, argv := range [][]string{{}, {"sh", "-c", "id"}, {"/usr/sbin/netplan", "apply"}, {"networkctl", "reconfigure", "ens2; reboot"}, {"systemctl", "start", ""}} {
		if _, err := e.Run(context.Background(), argv...); !errors.Is(err, ErrRefused) {
			t.Errorf("%q: err = %v, want refused", argv, err)
		}
	}
}

func TestRunsAndBoundsOutput(t *testing.T) {
	e := Exec{Programs: []string{"head"}}
	out, err := e.Run(context.Background(), "head", "-c", "100000", "/dev/zero")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != MaxOutput {
		t.Fatalf("output %d bytes, want %d", len(out), MaxOutput)
	}
	_, err = Exec{Programs: []string{"false"}}.Run(context.Background(), "false")
	if err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("err = %v", err)
	}
}
