package collect

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// TestQGAFallback: qemu-guest-agent is asked only for running, selected guests with its channel whose
// kvmnet agent did not answer; a hung qemu-guest-agent costs at most the shared deadline.
func TestQGAFallback(t *testing.T) {
	dir := t.TempDir()
	okSock := startAgent(t, dir, "vm1", &fakeAgent{state: guestState("vm1")})
	qgaCh := snapshot.Channel{Name: snapshot.ChannelQemuGA, Type: "unix", State: "connected"}
	withQGA := func(d snapshot.Domain) snapshot.Domain {
		d.Channels = append(d.Channels, qgaCh)
		return d
	}
	lv := &fakeLibvirt{uri: "qemu:///system", nets: []snapshot.Network{defaultNet()}}
	lv.doms = []snapshot.Domain{
		withQGA(runningDomain("vm1", okSock)),                 // kvmnet answers: not asked
		withQGA(runningDomain("nochan", "")),                  // no kvmnet channel: asked
		withQGA(runningDomain("refused", dir+"/nobody.sock")), // kvmnet refuses: asked
		runningDomain("noqga", ""),                            // no QGA channel: not asked
		withQGA(snapshot.Domain{Name: "off", State: "shut off"}),
		withQGA(runningDomain("hung", "")),
	}
	var mu sync.Mutex
	asked := map[string]bool{}
	src := QGAFunc(func(ctx context.Context, domain string) snapshot.QGAView {
		mu.Lock()
		asked[domain] = true
		mu.Unlock()
		if domain == "hung" {
			select {} // ignores ctx: collect must still return
		}
		return snapshot.QGAView{Answered: true, Interfaces: []snapshot.QGAInterface{{Name: "enp1s0", MAC: "52:54:00:00:00:01"}}}
	})
	c, err := New(Sources{Libvirt: lv, Agents: unixDialer(), QGA: src}, Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	s, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took > 3*time.Second {
		t.Errorf("collect took %s with a hung qemu-guest-agent", took)
	}
	for name, want := range map[string]bool{"vm1": false, "nochan": true, "refused": true, "noqga": false, "off": false, "hung": true} {
		if asked[name] != want {
			t.Errorf("%s: asked=%v, want %v", name, asked[name], want)
		}
		g, _ := s.FindGuest(name)
		switch {
		case want && name != "hung" && (g.QGA == nil || !g.QGA.Answered || len(g.QGA.Interfaces) != 1):
			t.Errorf("%s: view %+v", name, g.QGA)
		case name == "hung" && (g.QGA == nil || g.QGA.Answered || g.QGA.Error == ""):
			t.Errorf("hung: view %+v", g.QGA)
		case !want && g.QGA != nil:
			t.Errorf("%s: unexpected view %+v", name, g.QGA)
		}
	}
}
