package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Bus is a private dbus-daemon of the system type, listening on a unix socket in the test's temporary
// directory. Clients reach it with Address (DBUS_SYSTEM_BUS_ADDRESS form); it is never the machine's
// own system bus.
type Bus struct {
	// Address is the D-Bus address, "unix:path=/tmp/.../bus.sock".
	Address string
	// Socket is the path of the unix socket.
	Socket string
	// Proc is the running dbus-daemon (stopped by PID when the test ends).
	Proc *Proc
}

// busConfig is a system-type bus with a permissive mandatory policy. The includedirs load the policy
// files that packages (NetworkManager among them) install, so the bus behaves like a real system bus
// for name ownership; the mandatory policy then lets the test process (root) talk to everything.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
  <includedir>/usr/share/dbus-1/system.d</includedir>
  <includedir>/etc/dbus-1/system.d</includedir>
  <policy context="mandatory">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
`

// StartBus starts a private system-type dbus-daemon inside ns and waits until its socket accepts
// connections. It has no service directories, so nothing is ever activated on it.
func StartBus(t testing.TB, ns *Netns) *Bus {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "bus.sock")
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, busConfig, sock), 0o600); err != nil {
		t.Fatalf("write bus config: %v", err)
	}
	p := ns.Start("dbus-daemon", nil, "dbus-daemon", "--config-file="+conf, "--nofork", "--nopidfile", "--nosyslog")
	t.Cleanup(p.Stop) // before t.TempDir's removal (cleanups run last-in first-out)
	err := WaitFor(10*time.Second, 20*time.Millisecond, func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("dbus-daemon exited: %s", p.Output())
		}
		// The socket file exists from bind(); connect() is refused until listen(): dial, not stat.
		c, err := net.Dial("unix", sock)
		if err != nil {
			return false, err
		}
		c.Close()
		return true, nil
	})
	if err != nil {
		t.Fatalf("private dbus-daemon in %s did not come up: %v; output: %s", ns.Name, err, strings.TrimSpace(p.Output()))
	}
	return &Bus{Address: "unix:path=" + sock, Socket: sock, Proc: p}
}
