package pkgconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/agent/managedfile"
	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv/goldenfile"
)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), got)
}

func TestRenderAptGolden(t *testing.T) {
	golden(t, "99kvmnet-force-ipv4.golden", managedfile.WithHeader(RenderApt()))
	ss, err := parseApt(string(managedfile.WithHeader(RenderApt())))
	if err != nil || settingsString(ss) != "acquire::forceipv4=true" {
		t.Fatalf("rendered file does not parse as apt config: %v %v", ss, err)
	}
}

func TestRenderDnfGolden(t *testing.T) {
	inputs, _ := filepath.Glob("testdata/dnf/*.conf")
	if len(inputs) == 0 {
		t.Fatal("no dnf fixtures")
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".conf")
		t.Run(name, func(t *testing.T) {
			orig, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			forced := RenderDnf(orig, true)
			golden(t, "dnf/"+name+".force.golden", forced)
			if v, ok := dnfIPResolve(forced); !ok || v != "4" {
				t.Fatalf("forced file has ip_resolve=%q", v)
			}
			if again := RenderDnf(forced, true); string(again) != string(forced) {
				t.Fatalf("forcing twice changed the file:\n%s", again)
			}
			unforced := RenderDnf(forced, false)
			golden(t, "dnf/"+name+".unforce.golden", unforced)
			if _, ok := dnfIPResolve(unforced); ok {
				t.Fatal("unforced file still has ip_resolve in [main]")
			}
		})
	}
}

type fixture map[string]string // guest path → content ("" creates a directory)

func makeRoot(t *testing.T, fx fixture) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range fx {
		abs := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(abs, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(abs, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func newManager(t *testing.T, root string) *Manager {
	t.Helper()
	store, err := managedfile.New(managedfile.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(root, store)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const (
	absent  = kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_ABSENT
	kvmnet  = kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_KVMNET
	other   = kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_OTHER
	missing = kvmnetv1.ConfigFileState_CONFIG_FILE_STATE_NOT_INSTALLED
)

func TestState(t *testing.T) {
	own := string(managedfile.WithHeader(RenderApt()))
	tests := []struct {
		name      string
		fx        fixture
		apt       kvmnetv1.ConfigFileState
		aptSource string
		dnf       kvmnetv1.ConfigFileState
		dnfSource string
	}{
		{name: "nothing installed", fx: fixture{"etc/": ""}, apt: missing, dnf: missing},
		{name: "debian default", fx: fixture{
			"etc/apt/apt.conf.d/01autoremove": "APT { NeverAutoRemove { \"^linux-image.*\"; }; };\n",
			"etc/apt/apt.conf.d/70debconf":    "// Pre-configure all packages\nDPkg::Pre-Install-Pkgs {\"/usr/sbin/dpkg-preconfigure --apt || true\";};\n",
		}, apt: absent, dnf: missing},
		{name: "kvmnet file", fx: fixture{"etc/apt/apt.conf.d/99kvmnet-force-ipv4": own}, apt: kvmnet, aptSource: AptFile, dnf: missing},
		{name: "guide's own file", fx: fixture{"etc/apt/apt.conf.d/99force-ipv4": "Acquire::ForceIPv4 \"true\";\n"},
			apt: other, aptSource: "/etc/apt/apt.conf.d/99force-ipv4", dnf: missing},
		{name: "nested block in apt.conf", fx: fixture{"etc/apt/apt.conf": "Acquire\n{\n  ForceIPv4 \"true\"; // v4\n};\n"},
			apt: other, aptSource: "/etc/apt/apt.conf", dnf: missing},
		{name: "commented out", fx: fixture{"etc/apt/apt.conf.d/99force-ipv4": "// Acquire::ForceIPv4 \"true\";\n# Acquire::ForceIPv4 \"true\";\n"},
			apt: absent, dnf: missing},
		{name: "ignored file names", fx: fixture{
			"etc/apt/apt.conf.d/99force.bak":        "Acquire::ForceIPv4 \"true\";\n",
			"etc/apt/apt.conf.d/99force.disabled":   "Acquire::ForceIPv4 \"true\";\n",
			"etc/apt/apt.conf.d/99force.dpkg-old":   "Acquire::ForceIPv4 \"true\";\n",
			"etc/apt/apt.conf.d/99force-ipv4~":      "Acquire::ForceIPv4 \"true\";\n",
			"etc/apt/apt.conf.d/99force-ipv4.conf":  "",
			"etc/apt/apt.conf.d/has space":          "Acquire::ForceIPv4 \"true\";\n",
			"etc/apt/apt.conf.d/sub/99force-ipv4":   "Acquire::ForceIPv4 \"true\";\n",
			"etc/apt/apt.conf.d/00-explicitly-off.": "",
		}, apt: absent, dnf: missing},
		{name: "kvmnet file overridden to false by apt.conf", fx: fixture{
			"etc/apt/apt.conf.d/99kvmnet-force-ipv4": own,
			"etc/apt/apt.conf":                       "Acquire::ForceIPv4 \"false\";\n",
		}, apt: other, aptSource: "/etc/apt/apt.conf", dnf: missing},
		{name: "cleared later", fx: fixture{
			"etc/apt/apt.conf.d/10force": "Acquire::ForceIPv4 \"true\";\n",
			"etc/apt/apt.conf.d/20clear": "#clear Acquire;\n",
		}, apt: absent, dnf: missing},
		{name: "dnf default", fx: fixture{"etc/dnf/dnf.conf": "[main]\ngpgcheck=True\n"}, apt: missing, dnf: absent},
		{name: "dnf user ip_resolve=4", fx: fixture{"etc/dnf/dnf.conf": "[main]\nip_resolve=4\n"}, apt: missing, dnf: other, dnfSource: DnfConf},
		{name: "dnf user ip_resolve=IPv4", fx: fixture{"etc/dnf/dnf.conf": "[main]\nip_resolve = IPv4\n"}, apt: missing, dnf: other, dnfSource: DnfConf},
		{name: "dnf ip_resolve=6", fx: fixture{"etc/dnf/dnf.conf": "[main]\nip_resolve=6\n"}, apt: missing, dnf: absent},
		{name: "dnf ip_resolve in a repo section", fx: fixture{"etc/dnf/dnf.conf": "[main]\n[r]\nip_resolve=4\n"}, apt: missing, dnf: absent},
		{name: "dnf installed without dnf.conf", fx: fixture{"usr/bin/dnf": "#!/bin/sh\n"}, apt: missing, dnf: absent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newManager(t, makeRoot(t, tc.fx))
			st, err := m.State()
			if err != nil {
				t.Fatal(err)
			}
			want := &kvmnetv1.PackageManagerState{AptForceIpv4: tc.apt, AptSource: tc.aptSource, DnfIpResolveV4: tc.dnf, DnfSource: tc.dnfSource}
			if st.String() != want.String() {
				t.Fatalf("got  %v\nwant %v", st, want)
			}
		})
	}
}

func TestStateReportsParseErrors(t *testing.T) {
	m := newManager(t, makeRoot(t, fixture{"etc/apt/apt.conf.d/50broken": "Acquire { ForceIPv4 \"true\";\n"}))
	st, err := m.State()
	if err == nil || !strings.Contains(err.Error(), "/etc/apt/apt.conf.d/50broken") {
		t.Fatalf("err = %v", err)
	}
	if st.AptForceIpv4 != absent {
		t.Fatalf("state %v", st)
	}
}
