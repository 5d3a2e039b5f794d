package testenv

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
// lease), --log-dhcp to its output (Proc.Output, DHCPReport) and a lease file in the test's temporary
// directory, and waits until it serves: its lease file exists and its DHCP socket (UDP 67, and UDP 53
// with DNS) is bound in ns. A client started earlier would broadcast into a namespace with no
// listener, which the kernel drops without a trace (UdpIgnoredMulti).
func StartDnsmasq(t testing.TB, ns *Netns, o DnsmasqOptions) *Dnsmasq {
	t.Helper()
	dir := t.TempDir()
	leases := filepath.Join(dir, "dnsmasq.leases")
	argv := []string{"dnsmasq", "--keep-in-foreground", "--no-ping", "--conf-file=/dev/null",
		"--no-resolv", "--no-hosts", "--user=root", "--group=root", "--bind-interfaces",
		"--interface=" + o.Interface, "--except-interface=lo", "--dhcp-range=" + o.Range,
		"--dhcp-leasefile=" + leases, "--dhcp-authoritative", "--log-dhcp", "--log-facility=-",
		"--pid-file=" + filepath.Join(dir, "dnsmasq.pid")}
	ports := []uint16{67}
	if o.DNS {
		ports = append(ports, 53)
	} else {
		argv = append(argv, "--port=0")
	}
	argv = append(argv, o.Extra...)
	p := ns.Start("dnsmasq", nil, argv...)
	t.Cleanup(p.Stop) // before t.TempDir's removal (cleanups run last-in first-out)
	err := WaitFor(10*time.Second, 20*time.Millisecond, func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("dnsmasq %s", p.State())
		}
		if _, err := os.Stat(leases); err != nil {
			return false, err
		}
		// ip netns exec execs dnsmasq (no fork), so its PID is dnsmasq's and /proc/PID/net is ns's.
		return udpBound(p.Cmd.Process.Pid, ports)
	})
	if err != nil {
		t.Fatalf("dnsmasq in %s did not start: %v; output: %s", ns.Name, err, p.Output())
	}
	return &Dnsmasq{Proc: p, LeaseFile: leases}
}

// udpBound reports whether every port in ports has a bound UDP socket in the network namespace of
// process pid (/proc/PID/net/udp lists the namespace's sockets, local address as hex IP:PORT).
func udpBound(pid int, ports []uint16) (bool, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/udp", pid))
	if err != nil {
		return false, err
	}
	bound := map[uint16]bool{}
	for _, line := range strings.Split(string(raw), "\n")[1:] {
		fs := strings.Fields(line)
		if len(fs) < 2 {
			continue
		}
		_, port, ok := strings.Cut(fs[1], ":")
		if n, err := strconv.ParseUint(port, 16, 16); ok && err == nil {
			bound[uint16(n)] = true
		}
	}
	for _, want := range ports {
		if !bound[want] {
			return false, fmt.Errorf("no UDP socket on port %d yet", want)
		}
	}
	return true, nil
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

// BridgePort enslaves port (a veth end in ns) to bridge and waits until the port forwards (bridge
// port state "forwarding" with carrier). With STP off, as here, that is immediate; the wait turns a
// port stuck in listening/learning or without carrier into a clear failure instead of a DHCP timeout.
func (ns *Netns) BridgePort(port, bridge string) {
	ns.t.Helper()
	ns.MustRun("ip", "link", "set", port, "master", bridge)
	var last string
	err := WaitFor(10*time.Second, 20*time.Millisecond, func() (bool, error) {
		out, err := ns.Run("bridge", "-j", "link", "show", "dev", port)
		if err != nil {
			return false, err
		}
		var ls []struct {
			State string   `json:"state"`
			Flags []string `json:"flags"`
		}
		if err := json.Unmarshal([]byte(out), &ls); err != nil {
			return false, fmt.Errorf("bridge -j link show dev %s: %w: %s", port, err, out)
		}
		last = out
		return len(ls) == 1 && ls[0].State == "forwarding" && slices.Contains(ls[0].Flags, "LOWER_UP"), nil
	})
	if err != nil {
		ns.t.Fatalf("bridge port %s on %s in %s does not forward: %v; last: %s", port, bridge, ns.Name, err, last)
	}
}
