package channel

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// fakeDomains keeps persistent and live XML per domain in memory.
type fakeDomains struct {
	persistent map[string]string
	live       map[string]string
	attachErr  error
	defines    int
	attached   []string
}

func (f *fakeDomains) PersistentXML(_ context.Context, name string) (string, error) {
	x, ok := f.persistent[name]
	if !ok {
		return "", errors.New("domain not found: " + name)
	}
	return x, nil
}

func (f *fakeDomains) LiveXML(_ context.Context, name string) (string, error) {
	return f.live[name], nil
}

func (f *fakeDomains) DefineXML(_ context.Context, xml string) error {
	doc, err := parseDomain(xml)
	if err != nil {
		return err
	}
	f.defines++
	f.persistent[doc.name] = xml
	return nil
}

func (f *fakeDomains) AttachDeviceLive(_ context.Context, name, dev string) error {
	if f.attachErr != nil {
		return f.attachErr
	}
	f.attached = append(f.attached, name+":"+dev)
	return nil
}

// liveOf makes a "running" XML from a persistent one, with the kvmnet channel at path.
func liveWithChannel(name, path string) string {
	return "<domain id='1'><name>" + name + "</name><devices><channel type='unix'><source mode='bind' path='" + path +
		"'/><target type='virtio' name='org.kvmnet.agent.0' state='disconnected'/></channel></devices></domain>"
}

func liveWithout(name string) string {
	return "<domain id='1'><name>" + name + "</name><devices><emulator>/usr/bin/qemu</emulator></devices></domain>"
}

func okPrepare(calls *int) PrepareFunc {
	return func(dir string) (DirResult, error) {
		*calls++
		return DirResult{Dir: dir, Owner: "libvirt-qemu", Actions: []string{"created"}}, nil
	}
}

func TestEnable(t *testing.T) {
	nochan := readTestdata(t, "nochannel.xml")
	auto := readTestdata(t, "autopath.xml")
	cases := []struct {
		name       string
		domain     string
		persistent string
		live       string
		attachErr  error
		opts       EnableOptions
		wantLive   string
		applied    bool
		attached   int
		prepares   int
		msg        string
		evidence   string
	}{
		{name: "shut off, no channel: added for next start", domain: "web1", persistent: nochan,
			wantLive: LiveNotRunning, applied: true, prepares: 1, msg: "takes effect when it next starts"},
		{name: "running: hot-plugged", domain: "web1", persistent: nochan, live: liveWithout("web1"),
			wantLive: LiveHotplugged, applied: true, attached: 1, prepares: 1, msg: "hot-plugged", evidence: "hotplug=ok"},
		{name: "running with a controller: channel hot-plugged", domain: "web1", persistent: nochan,
			live:     strings.Replace(liveWithout("web1"), "<devices>", "<devices><controller type='virtio-serial' index='0'/>", 1),
			wantLive: LiveHotplugged, applied: true, attached: 1, prepares: 1, msg: "hot-plugged", evidence: "have=none action=add hotplug=ok"},
		{name: "running, hot-plug refused: next boot", domain: "web1", persistent: nochan, live: liveWithout("web1"),
			attachErr: errors.New("no virtio-serial controller"), wantLive: LiveNextBoot, applied: true, prepares: 1,
			msg: "did not accept the channel live (no virtio-serial controller)", evidence: "hotplug=failed"},
		{name: "running with channel at the automatic path: moved, next boot", domain: "db1", persistent: auto,
			live:     liveWithChannel("db1", "/var/lib/libvirt/qemu/channel/target/domain-1-db1/org.kvmnet.agent.0"),
			wantLive: LiveNextBoot, applied: true, prepares: 1, msg: "shut down and started again"},
		{name: "dry run changes nothing", domain: "web1", persistent: nochan, opts: EnableOptions{DryRun: true},
			wantLive: LiveUnchanged, msg: "dry run", evidence: "dry_run=yes"},
		{name: "remote libvirt: no prepare, hint", domain: "web1", persistent: nochan, opts: EnableOptions{Prepare: nil},
			wantLive: LiveNotRunning, applied: true, msg: "libvirt is remote"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeDomains{persistent: map[string]string{tc.domain: tc.persistent}, live: map[string]string{tc.domain: tc.live},
				attachErr: tc.attachErr}
			calls := 0
			o := tc.opts
			if !strings.HasPrefix(tc.name, "remote") {
				o.Prepare = okPrepare(&calls)
			}
			res, err := Enable(context.Background(), f, tc.domain, o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Live != tc.wantLive || res.Applied != tc.applied || len(f.attached) != tc.attached || calls != tc.prepares {
				t.Fatalf("live=%s applied=%v attached=%d prepares=%d; want %s %v %d %d\n%+v", res.Live, res.Applied,
					len(f.attached), calls, tc.wantLive, tc.applied, tc.attached, tc.prepares, res)
			}
			if !strings.Contains(res.Message, tc.msg) || !strings.Contains(res.Evidence, tc.evidence) {
				t.Fatalf("message %q / evidence %q, want %q / %q", res.Message, res.Evidence, tc.msg, tc.evidence)
			}
			if res.Diff == "" || !strings.Contains(res.Diff, "+") {
				t.Fatalf("no diff: %+v", res)
			}
			if tc.applied != (f.defines == 1) {
				t.Fatalf("defines = %d", f.defines)
			}
			if !tc.applied {
				return
			}
			// Idempotent: a second run changes nothing.
			if tc.wantLive == LiveHotplugged {
				f.live[tc.domain] = liveWithChannel(tc.domain, res.Path)
			}
			again, err := Enable(context.Background(), f, tc.domain, o)
			if err != nil {
				t.Fatal(err)
			}
			if again.Applied || again.Diff != "" || f.defines != 1 {
				t.Fatalf("second run changed things: %+v (defines %d)", again, f.defines)
			}
		})
	}
}

func TestEnableErrors(t *testing.T) {
	f := &fakeDomains{persistent: map[string]string{"web1": readTestdata(t, "nochannel.xml")}, live: map[string]string{}}
	if _, err := Enable(context.Background(), f, "nope", EnableOptions{}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown domain: %v", err)
	}
	failing := func(string) (DirResult, error) { return DirResult{}, errors.New("chown failed") }
	if _, err := Enable(context.Background(), f, "web1", EnableOptions{Prepare: failing}); err == nil ||
		!strings.Contains(err.Error(), "chown failed") {
		t.Fatalf("prepare error not returned: %v", err)
	}
	if f.defines != 0 {
		t.Fatal("defined although the directory could not be prepared")
	}
}

func TestFixExposed(t *testing.T) {
	auto := readTestdata(t, "autopath.xml")
	nochan := readTestdata(t, "nochannel.xml")
	f := &fakeDomains{
		persistent: map[string]string{"db1": auto, "web1": nochan},
		live: map[string]string{"db1": liveWithChannel("db1",
			"/var/lib/libvirt/qemu/channel/target/domain-1-db1/org.kvmnet.agent.0")},
	}
	var asked []string
	decline := func(domain, diff string) (bool, error) { asked = append(asked, domain); return false, nil }
	res, err := FixExposed(context.Background(), f, []string{"db1", "web1", "ghost"}, FixOptions{Confirm: decline})
	if err == nil || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("error = %v, want one naming ghost", err)
	}
	if len(res) != 2 || !res[0].Declined || res[0].Applied || f.defines != 0 || len(asked) != 1 {
		t.Fatalf("declined run: %+v asked=%v defines=%d", res, asked, f.defines)
	}
	if !strings.Contains(res[1].Message, "no kvmnet channel") {
		t.Fatalf("web1: %+v", res[1])
	}

	calls := 0
	res, err = FixExposed(context.Background(), f, []string{"db1"}, FixOptions{Yes: true, Prepare: okPrepare(&calls)})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Applied || res[0].Live != LiveNextBoot || calls != 1 || !strings.Contains(res[0].Message, "shut down and started again") ||
		!strings.Contains(res[0].Diff, "+      <source mode='bind' path='/var/lib/kvmnet/channels/db1.agent.0'/>") {
		t.Fatalf("applied run: %+v calls=%d", res[0], calls)
	}
	// Again: persistent is fixed, the running domain still has the old socket.
	res, err = FixExposed(context.Background(), f, []string{"db1"}, FixOptions{Yes: true, Prepare: okPrepare(&calls)})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Applied || res[0].Live != LiveNextBoot || !strings.Contains(res[0].Message, "already uses") {
		t.Fatalf("second run: %+v", res[0])
	}
	if _, err := FixExposed(context.Background(), f, []string{"db1"}, FixOptions{}); err == nil {
		t.Fatal("no confirm and no yes must be an error")
	}
}
