package packaging

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv"
)

// DistEnv names a directory with packages already built by build.sh (its VERSION file included);
// unset, the tests run build.sh once into a temporary directory.
const DistEnv = "KVMNET_DIST"

// testVersion is what the test build embeds; build.sh turns it into package version 0.0.0+pktest.
const testVersion = "0.0.0-pktest"

var (
	distOnce sync.Once
	distDir  string
	distErr  string
	distTmp  string
)

// dist returns the directory with the packages and the package version.
func dist(t *testing.T) (string, string) {
	t.Helper()
	testenv.Require(t, "bash", "go", "gzip", "dpkg-deb", "rpm")
	distOnce.Do(func() {
		if d := os.Getenv(DistEnv); d != "" {
			distDir = d
			return
		}
		tmp, err := os.MkdirTemp("", "kvmnet-pk-dist")
		if err != nil {
			distErr = err.Error()
			return
		}
		distTmp = tmp
		cmd := exec.Command("bash", "build.sh", testVersion)
		cmd.Env = append(os.Environ(), "DIST="+tmp)
		out, err := cmd.CombinedOutput()
		if err != nil {
			distErr = "packaging/build.sh " + testVersion + ": " + err.Error() + "\n" + string(out)
			return
		}
		distDir = tmp
	})
	if distErr != "" {
		t.Fatal(distErr)
	}
	v, err := os.ReadFile(filepath.Join(distDir, "VERSION"))
	if err != nil {
		t.Fatalf("%s/VERSION: %v (set %s to a dist/ made by build.sh, or unset it)", distDir, err, DistEnv)
	}
	return distDir, strings.TrimSpace(string(v))
}

func TestMain(m *testing.M) {
	code := m.Run()
	if distTmp != "" {
		_ = os.RemoveAll(distTmp)
	}
	os.Exit(code)
}

func run(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

type entry struct{ perms, owner, path string }

// debContents parses `dpkg-deb -c`: "-rwxr-xr-x root/root 123 2026-01-01 00:00 ./usr/sbin/x".
func debContents(t *testing.T, deb string) map[string]entry {
	t.Helper()
	m := map[string]entry{}
	for _, l := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "-c", deb)), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c line %q", l)
		}
		p := strings.TrimPrefix(f[5], ".")
		if p != "/" {
			p = strings.TrimSuffix(p, "/")
		}
		m[p] = entry{f[0], f[1], p}
	}
	return m
}

// rpmContents parses rpm's file list with modes, owners and flags.
func rpmContents(t *testing.T, rpm string) map[string][]string {
	t.Helper()
	m := map[string][]string{}
	out := run(t, "rpm", "-qp", "--qf", "[%{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME} %{FILEFLAGS:fflags} %{FILENAMES}\n]", rpm)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		switch len(f) {
		case 3: // no flags
			m[f[2]] = []string{f[0], f[1], ""}
		case 4:
			m[f[3]] = []string{f[0], f[1], f[2]}
		default:
			t.Fatalf("rpm file line %q", l)
		}
	}
	return m
}

func debArch(goarch string) string { return goarch }

func rpmArch(goarch string) string {
	return map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[goarch]
}

var agentFiles = []struct{ path, perms string }{
	{"/usr/sbin/kvmnet-agent", "-rwxr-xr-x"},
	{"/usr/lib/systemd/system/kvmnet-agent.service", "-rw-r--r--"},
	{"/usr/lib/udev/rules.d/60-kvmnet-agent.rules", "-rw-r--r--"},
	{"/etc/kvmnet/agent.yaml", "-rw-r--r--"},
	{"/usr/share/doc/kvmnet-agent/README.packaging.md", "-rw-r--r--"},
}

func TestAgentDebMetadataAndContents(t *testing.T) {
	d, ver := dist(t)
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			deb := filepath.Join(d, "kvmnet-agent_"+ver+"_"+debArch(arch)+".deb")
			info := run(t, "dpkg-deb", "-I", deb)
			t.Logf("dpkg-deb -I %s:\n%s", filepath.Base(deb), info)
			for field, want := range map[string]string{"Package": "kvmnet-agent", "Version": ver, "Architecture": arch,
				"Recommends": "network-manager", "Depends": ""} {
				if got := strings.TrimSpace(run(t, "dpkg-deb", "-f", deb, field)); got != want {
					t.Errorf("%s = %q, want %q", field, got, want)
				}
			}
			files := debContents(t, deb)
			for _, f := range agentFiles {
				e, ok := files[f.path]
				if !ok || e.perms != f.perms || e.owner != "root/root" {
					t.Errorf("%s: %+v (present %v), want %s root/root", f.path, e, ok, f.perms)
				}
			}
			ctrl := t.TempDir()
			run(t, "dpkg-deb", "-e", deb, ctrl)
			conffiles, _ := os.ReadFile(filepath.Join(ctrl, "conffiles"))
			if strings.TrimSpace(string(conffiles)) != "/etc/kvmnet/agent.yaml" {
				t.Errorf("conffiles = %q", conffiles)
			}
			for _, s := range []string{"postinst", "prerm", "postrm"} {
				want, _ := os.ReadFile(filepath.Join("agent", "scripts", "deb", s))
				got, err := os.ReadFile(filepath.Join(ctrl, s))
				fi, _ := os.Stat(filepath.Join(ctrl, s))
				if err != nil || !bytes.Equal(got, want) || fi.Mode().Perm()&0o111 == 0 {
					t.Errorf("control script %s missing, not executable or not the one in packaging/agent/scripts/deb", s)
				}
			}
			// The binary: static, for the right machine, with the version embedded.
			root := t.TempDir()
			run(t, "dpkg-deb", "-x", deb, root)
			checkELF(t, filepath.Join(root, "usr/sbin/kvmnet-agent"), arch, true)
		})
	}
}

func checkELF(t *testing.T, path, arch string, static bool) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != want {
		t.Errorf("%s: machine %v, want %v", path, f.Machine, want)
	}
	interp := false
	for _, p := range f.Progs {
		interp = interp || p.Type == elf.PT_INTERP
	}
	if static && interp {
		t.Errorf("%s: has a program interpreter: not statically linked", path)
	}
	libs, _ := f.ImportedLibraries()
	for _, l := range libs {
		if strings.Contains(l, "libvirt") {
			t.Errorf("%s links %s: the controller must load libvirt with dlopen (-tags libvirt_dlopen)", path, l)
		}
	}
	if static && len(libs) != 0 {
		t.Errorf("%s: imports %v", path, libs)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv(DistEnv) == "" && !bytes.Contains(b, []byte(testVersion)) {
		t.Errorf("%s: version %q not embedded", path, testVersion)
	}
}

func TestAgentRPMMetadataAndContents(t *testing.T) {
	d, ver := dist(t)
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			rpm := filepath.Join(d, "kvmnet-agent-"+ver+"."+rpmArch(arch)+".rpm")
			got := run(t, "rpm", "-qp", "--qf", "%{NAME} %{VERSION} %{ARCH}", rpm)
			if want := "kvmnet-agent " + ver + " " + rpmArch(arch); got != want {
				t.Errorf("rpm NAME VERSION ARCH = %q, want %q", got, want)
			}
			files := rpmContents(t, rpm)
			for _, f := range agentFiles {
				e, ok := files[f.path]
				if !ok || e[0] != f.perms || e[1] != "root/root" {
					t.Errorf("%s: %v (present %v), want %s root/root", f.path, e, ok, f.perms)
				}
			}
			if flags := files["/etc/kvmnet/agent.yaml"]; len(flags) < 3 || !strings.Contains(flags[2], "c") || !strings.Contains(flags[2], "n") {
				t.Errorf("agent.yaml is not %%config(noreplace): flags %v", flags)
			}
			cfg := strings.TrimSpace(run(t, "rpm", "-qp", "--configfiles", rpm))
			if cfg != "/etc/kvmnet/agent.yaml" {
				t.Errorf("config files = %q", cfg)
			}
			scripts := run(t, "rpm", "-qp", "--scripts", rpm)
			for _, want := range []string{"postinstall scriptlet", "systemctl --no-reload enable", "[ -d /run/systemd/system ]",
				"preuninstall scriptlet", "postuninstall scriptlet", "! -name backup"} {
				if !strings.Contains(scripts, want) {
					t.Errorf("rpm scripts lack %q:\n%s", want, scripts)
				}
			}
			for _, l := range strings.Split(run(t, "rpm", "-qp", "--requires", rpm), "\n") {
				if strings.Contains(l, "libvirt") || strings.HasPrefix(l, "lib") {
					t.Errorf("static agent requires %q", l)
				}
			}
		})
	}
}

// crossCC is the C compiler build.sh needs for a kvmnetctl (cgo) of each arch on another machine.
var crossCC = map[string]string{"amd64": "x86_64-linux-gnu-gcc", "arm64": "aarch64-linux-gnu-gcc"}

// TestCtlPackages checks kvmnetctl's .deb and .rpm for amd64 and arm64: metadata, files, modes, and
// the binary (machine, libc only, libvirt through dlopen, glibc symbol versions within the declared
// dependency).
func TestCtlPackages(t *testing.T) {
	d, ver := dist(t)
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			if arch != runtime.GOARCH {
				// build.sh builds this arch only with a C cross compiler (scripts/install-deps.sh installs it).
				testenv.Require(t, crossCC[arch])
			}
			deb := filepath.Join(d, "kvmnetctl_"+ver+"_"+debArch(arch)+".deb")
			rpm := filepath.Join(d, "kvmnetctl-"+ver+"."+rpmArch(arch)+".rpm")
			for _, p := range []string{deb, rpm} {
				if _, err := os.Stat(p); err != nil {
					t.Fatalf("%v: build.sh skips kvmnetctl for %s without a C compiler that can link for it "+
						"(Debian 12 amd64: gcc-aarch64-linux-gnu libc6-dev-arm64-cross, see scripts/install-deps.sh)", err, arch)
				}
			}
			checkCtlDeb(t, deb, ver, arch)
			checkCtlRPM(t, rpm, ver, arch)
		})
	}
}

func checkCtlDeb(t *testing.T, deb, ver, arch string) {
	t.Helper()
	for field, want := range map[string]string{"Package": "kvmnetctl", "Version": ver, "Architecture": debArch(arch),
		"Depends": "libc6 (>= 2.34), libvirt0"} {
		if got := strings.TrimSpace(run(t, "dpkg-deb", "-f", deb, field)); got != want {
			t.Errorf("%s: %s = %q, want %q", filepath.Base(deb), field, got, want)
		}
	}
	files := debContents(t, deb)
	var man int
	for p, e := range files {
		if strings.HasPrefix(p, "/usr/share/man/man1/") && strings.HasSuffix(p, ".1.gz") {
			man++
			if e.perms != "-rw-r--r--" {
				t.Errorf("%s mode %s", p, e.perms)
			}
		}
	}
	if man == 0 || files["/usr/share/man/man1/kvmnetctl.1.gz"].path == "" {
		t.Errorf("no man pages (kvmnetctl.1.gz and one per command expected)")
	}
	for p, perms := range map[string]string{
		"/usr/bin/kvmnetctl": "-rwxr-xr-x",
		"/usr/share/bash-completion/completions/kvmnetctl":    "-rw-r--r--",
		"/usr/share/zsh/vendor-completions/_kvmnetctl":        "-rw-r--r--",
		"/usr/share/fish/vendor_completions.d/kvmnetctl.fish": "-rw-r--r--",
		"/usr/lib/tmpfiles.d/kvmnet.conf":                     "-rw-r--r--",
	} {
		if e, ok := files[p]; !ok || e.perms != perms || e.owner != "root/root" {
			t.Errorf("deb %s: %+v present=%v, want %s root/root", p, e, ok, perms)
		}
	}
	root := t.TempDir()
	run(t, "dpkg-deb", "-x", deb, root)
	bin := filepath.Join(root, "usr/bin/kvmnetctl")
	checkELF(t, bin, arch, false)
	checkCtlELF(t, bin, arch, "2.34")
	if arch == runtime.GOARCH { // a foreign binary cannot run here; checkELF found the version string in it
		if out := run(t, bin, "version"); os.Getenv(DistEnv) == "" && !strings.Contains(out, testVersion) {
			t.Errorf("kvmnetctl version = %q, want it to contain %s", out, testVersion)
		}
	}
	for p, needle := range map[string]string{
		"usr/share/bash-completion/completions/kvmnetctl":    "complete",
		"usr/share/zsh/vendor-completions/_kvmnetctl":        "compdef",
		"usr/share/fish/vendor_completions.d/kvmnetctl.fish": "complete -c kvmnetctl",
	} {
		b, _ := os.ReadFile(filepath.Join(root, p))
		if !strings.Contains(string(b), needle) {
			t.Errorf("%s does not look like a completion script (no %q)", p, needle)
		}
	}
	tmpf, _ := os.ReadFile(filepath.Join(root, "usr/lib/tmpfiles.d/kvmnet.conf"))
	if !strings.Contains(string(tmpf), "d /var/lib/kvmnet/channels 0700 - - -") {
		t.Errorf("tmpfiles entry: %s", tmpf)
	}
	// Every agent package build.sh made ships inside kvmnetctl, byte for byte (guests install-agent).
	agents, _ := filepath.Glob(filepath.Join(filepath.Dir(deb), "kvmnet-agent*"))
	if len(agents) == 0 {
		t.Errorf("no agent packages next to %s", deb)
	}
	for _, a := range agents {
		p := "/usr/share/kvmnet/agent/" + filepath.Base(a)
		if e, ok := files[p]; !ok || e.perms != "-rw-r--r--" || e.owner != "root/root" {
			t.Errorf("deb %s: %+v present=%v, want -rw-r--r-- root/root", p, e, ok)
			continue
		}
		want, _ := os.ReadFile(a)
		got, _ := os.ReadFile(filepath.Join(root, p))
		if len(want) == 0 || !bytes.Equal(got, want) {
			t.Errorf("deb %s differs from %s (%d vs %d bytes)", p, a, len(got), len(want))
		}
	}
}

func checkCtlRPM(t *testing.T, rpm, ver, arch string) {
	t.Helper()
	if got, want := run(t, "rpm", "-qp", "--qf", "%{NAME} %{VERSION} %{ARCH}", rpm), "kvmnetctl "+ver+" "+rpmArch(arch); got != want {
		t.Errorf("rpm NAME VERSION ARCH = %q, want %q", got, want)
	}
	req := run(t, "rpm", "-qp", "--requires", rpm)
	for _, want := range []string{"libvirt-libs", "glibc"} {
		if !strings.Contains(req, want) {
			t.Errorf("rpm requires lack %s:\n%s", want, req)
		}
	}
	rf := rpmContents(t, rpm)
	for p, perms := range map[string]string{
		"/usr/bin/kvmnetctl":                               "-rwxr-xr-x",
		"/usr/share/zsh/site-functions/_kvmnetctl":         "-rw-r--r--",
		"/usr/lib/tmpfiles.d/kvmnet.conf":                  "-rw-r--r--",
		"/usr/share/bash-completion/completions/kvmnetctl": "-rw-r--r--",
		"/usr/share/man/man1/kvmnetctl.1.gz":               "-rw-r--r--",
	} {
		if e, ok := rf[p]; !ok || e[0] != perms || e[1] != "root/root" {
			t.Errorf("rpm %s: %v present=%v, want %s root/root", p, e, ok, perms)
		}
	}
	if _, ok := rf["/usr/share/zsh/vendor-completions/_kvmnetctl"]; ok {
		t.Error("rpm ships the Debian zsh path")
	}
}

// elfInterp is the glibc program interpreter of each arch (what the packages' libc dependency provides).
var elfInterp = map[string]string{"amd64": "/lib64/ld-linux-x86-64.so.2", "arm64": "/lib/ld-linux-aarch64.so.1"}

// checkCtlELF checks the controller's dynamic linking: it needs libc.so.6 and nothing else (libvirt is
// opened with dlopen at run time), it imports dlopen, its interpreter is glibc's for the arch, and no
// imported symbol needs a glibc newer than libcMin, the version the packages depend on.
func checkCtlELF(t *testing.T, path, arch, libcMin string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	libs, err := f.ImportedLibraries()
	if err != nil || strings.Join(libs, " ") != "libc.so.6" {
		t.Errorf("%s: DT_NEEDED %v (%v), want exactly [libc.so.6]", path, libs, err)
	}
	var interp string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				t.Fatal(err)
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if interp != elfInterp[arch] {
		t.Errorf("%s: interpreter %q, want %q", path, interp, elfInterp[arch])
	}
	syms, err := f.ImportedSymbols()
	if err != nil {
		t.Fatal(err)
	}
	dlopen := false
	newest := "0"
	var virt []string
	for _, s := range syms {
		dlopen = dlopen || s.Name == "dlopen"
		if strings.Contains(s.Library, "libvirt") || strings.HasPrefix(s.Name, "vir") {
			virt = append(virt, s.Name+"@"+s.Library)
		}
		if v, ok := strings.CutPrefix(s.Version, "GLIBC_"); ok && versionLess(newest, v) {
			newest = v
		}
	}
	if len(virt) > 0 {
		t.Errorf("%s imports %d libvirt symbols (first %s): libvirt must be opened with dlopen", path, len(virt), virt[0])
	}
	if !dlopen {
		t.Errorf("%s does not import dlopen: not built with -tags libvirt_dlopen?", path)
	}
	if versionLess(libcMin, newest) {
		t.Errorf("%s needs GLIBC_%s, newer than the declared libc6 (>= %s)", path, newest, libcMin)
	}
	t.Logf("evidence: arch=%s machine=%v needed=%v interp=%s dlopen=%v glibc_max=%s declared_min=%s",
		arch, f.Machine, libs, interp, dlopen, newest, libcMin)
}

// versionLess compares dotted numeric versions ("2.3.2" < "2.34").
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// TestUnitAndRule checks the shipped unit and udev rule say what the issue asks for, and that
// systemd-analyze accepts the unit.
func TestUnitAndRule(t *testing.T) {
	testenv.Require(t, "systemd-analyze")
	unit, err := os.ReadFile("agent/kvmnet-agent.service")
	if err != nil {
		t.Fatal(err)
	}
	u := string(unit)
	for _, want := range []string{
		"Type=notify", "Restart=on-failure", "ExecStart=/usr/sbin/kvmnet-agent --config /etc/kvmnet/agent.yaml",
		"ConditionPathExists=|/dev/virtio-ports/org.kvmnet.agent.0", "ConditionPathExists=|/dev/vsock",
		"StateDirectory=kvmnet", "ProtectSystem=strict",
		"ReadWritePaths=/etc/sysctl.d -/etc/apt/apt.conf.d -/etc/dnf", "ReadWritePaths=/proc/sys/net",
		"ReadWritePaths=-/etc/netplan -/etc/systemd/network -/etc/network",
		"ReadWritePaths=-/run/systemd/network -/run/NetworkManager/system-connections -/run/udev/rules.d -/run/systemd/system",
		"RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_VSOCK AF_INET AF_INET6",
		"DeviceAllow=char-virtio-portsdev rw", "DeviceAllow=/dev/vsock rw", "WantedBy=multi-user.target",
	} {
		if !strings.Contains(u, want+"\n") {
			t.Errorf("unit lacks line %q", want)
		}
	}
	// PrivateDevices would hide /dev/virtio-ports; a mount/IPC sandbox must not cut off the system bus.
	for _, bad := range []string{"PrivateDevices=yes", "PrivateNetwork=yes", "InaccessiblePaths=/run/dbus", "PrivateUsers=yes"} {
		if strings.Contains(u, bad) {
			t.Errorf("unit has %q, which breaks the agent", bad)
		}
	}
	// systemd-analyze verify, in a root with the machine's units (sysinit.target, ...) and the binary.
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "usr/sbin"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755))
	run(t, "cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/"))
	must(t, os.WriteFile(filepath.Join(root, "usr/sbin/kvmnet-agent"), []byte("#!/bin/sh\n"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "usr/lib/systemd/system/kvmnet-agent.service"), unit, 0o644))
	out, err := exec.Command("systemd-analyze", "verify", "--root="+root, "/usr/lib/systemd/system/kvmnet-agent.service").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	rule, err := os.ReadFile("agent/60-kvmnet-agent.rules")
	if err != nil {
		t.Fatal(err)
	}
	want := `SUBSYSTEM=="virtio-ports", ATTR{name}=="org.kvmnet.agent.0", TAG+="systemd", ENV{SYSTEMD_WANTS}="kvmnet-agent.service"`
	if !strings.Contains(string(rule), want+"\n") {
		t.Errorf("udev rule lacks %s", want)
	}
}

// TestDefaultConfig: the shipped agent.yaml loads with the agent's own loader (unknown keys are
// errors there), sets exactly the built-in defaults, and documents and sets every key.
func TestDefaultConfig(t *testing.T) {
	got, err := config.Load("agent/agent.yaml")
	if err != nil {
		t.Fatalf("agent.yaml: %v", err)
	}
	if want := config.Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("agent.yaml differs from config.Default():\n got %+v\nwant %+v", got, want)
	}
	b, err := os.ReadFile("agent/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range config.Keys() {
		if !strings.Contains(string(b), "\n# "+key+":") || !strings.Contains(string(b), "\n"+key+":") {
			t.Errorf("agent.yaml does not document and set key %q", key)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
