package testenv

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Dnsmasq is a dnsmasq serving DHCP (and DNS only when asked) inside a test namespace.
type Dnsmasq struct {
	// Proc is the running dnsmasq (stopped by PID when the test ends).
	Proc *Proc
	// LeaseFile is where dnsmasq records its leases.
	LeaseFile string
}

// DnsmasqOptions says what dnsmasq serves.
type DnsmasqOptions struct {
	// Interface to serve on (usually a bridge created with Bridge).
	Interface string
	// Range is a --dhcp-range value, e.g. "10.77.0.100,10.77.0.199,255.255.255.0,1h".
	Range string
	// DNS makes dnsmasq answer DNS on port 53 too; by default it runs with --port=0 (DHCP only).
	DNS bool
	// Extra arguments, e.g. "--dhcp-host=52:54:00:00:00:09,ignore".
	Extra []string
}

// StartDnsmasq starts dnsmasq in the foreground inside ns, with --no-ping (no 3 s probe before each
// lease) and a lease file in the test's temporary directory, and waits until it runs.
func StartDnsmasq(t testing.TB, ns *Netns, o DnsmasqOptions) *Dnsmasq {
	t.Helper()
	dir := t.TempDir()
	leases := filepath.Join(dir, "dnsmasq.leases")
	argv := []string{"dnsmasq", "--keep-in-foreground", "--no-ping", "--conf-file=/dev/null",
		"--no-resolv", "--no-hosts", "--user=root", "--group=root", "--bind-interfaces",
		"--interface=" + o.Interface, "--except-interface=lo", "--dhcp-range=" + o.Range,
		"--dhcp-leasefile=" + leases, "--dhcp-authoritative", "--log-dhcp", "--log-facility=-",
		"--pid-file=" + filepath.Join(dir, "dnsmasq.pid")}
	if !o.DNS {
		argv = append(argv, "--port=0")
	}
	argv = append(argv, o.Extra...)
	p := ns.Start("dnsmasq", nil, argv...)
	t.Cleanup(p.Stop) // before t.TempDir's removal (cleanups run last-in first-out)
	err := WaitFor(10*time.Second, 20*time.Millisecond, func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("dnsmasq exited: %s", p.Output())
		}
		_, err := os.Stat(leases)
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("dnsmasq in %s did not start: %v; output: %s", ns.Name, err, p.Output())
	}
	return &Dnsmasq{Proc: p, LeaseFile: leases}
}

// Lease is one line of dnsmasq's lease file.
type Lease struct {
	// MAC of the client, lower case.
	MAC string
	// IP leased.
	IP string
	// Hostname the client sent, "*" when none.
	Hostname string
}

// Leases reads the current leases.
func (d *Dnsmasq) Leases() ([]Lease, error) {
	f, err := os.Open(d.LeaseFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Lease
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 4 {
			out = append(out, Lease{MAC: strings.ToLower(fs[1]), IP: fs[2], Hostname: fs[3]})
		}
	}
	return out, sc.Err()
}

// LeaseFor returns the leased IP for mac, or "" when it has none.
func (d *Dnsmasq) LeaseFor(mac string) string {
	ls, _ := d.Leases()
	for _, l := range ls {
		if l.MAC == strings.ToLower(mac) {
			return l.IP
		}
	}
	return ""
}

// Bridge creates a bridge named name inside ns with address cidr (e.g. "10.77.0.1/24") and brings it
// up.
func (ns *Netns) Bridge(name, cidr string) {
	ns.t.Helper()
	ns.MustRun("ip", "link", "add", name, "type", "bridge")
	ns.MustRun("ip", "addr", "add", cidr, "dev", name)
	ns.MustRun("ip", "link", "set", name, "up")
}
