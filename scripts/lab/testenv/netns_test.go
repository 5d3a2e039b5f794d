package testenv

import (
	"strings"
	"testing"
)

func TestNetnsVethAndCleanup(t *testing.T) {
	Require(t, "ip")
	var name string
	t.Run("inner", func(t *testing.T) {
		a := NewNetns(t, "te")
		b := NewNetns(t, "te")
		name = a.Name
		a.Veth("va", b, "vb")
		a.MustRun("ip", "addr", "add", "10.250.0.1/30", "dev", "va")
		b.MustRun("ip", "addr", "add", "10.250.0.2/30", "dev", "vb")
		out := a.MustRun("ping", "-c1", "-W2", "10.250.0.2")
		if !strings.Contains(out, "1 received") {
			t.Fatalf("ping across veth failed: %s", out)
		}
		p := a.Start("sleeper", nil, "sleep", "300")
		if p.Exited() {
			t.Fatal("sleeper exited early")
		}
	})
	out, err := NewNetns(t, "te").Run("ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, name) {
		t.Fatalf("namespace %s still exists after its test ended", name)
	}
}
