package sockaccess

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// QEMUIdentity is the user and group QEMU runs as under the host's libvirt.
type QEMUIdentity struct {
	// User name (or "uid:N" when the id has no name).
	User string
	// Group name.
	Group string
	// UID of User.
	UID uint32
	// GID of Group.
	GID uint32
	// Source says where it was read: "qemu.conf", "process", "libvirt-dir".
	Source string
	// Evidence, key=value words.
	Evidence string
}

// QEMUSources say where to look for QEMU's identity. Zero values mean the host's standard paths.
type QEMUSources struct {
	// QEMUConf is libvirt's qemu.conf. Default /etc/libvirt/qemu.conf.
	QEMUConf string
	// Proc is the proc filesystem to scan for running QEMU processes. Default /proc.
	Proc string
	// LibvirtDir is libvirt's QEMU state directory, chowned to QEMU's user. Default /var/lib/libvirt/qemu.
	LibvirtDir string
	// Accounts resolve names and ids.
	Accounts Accounts
}

// ParseQEMUConf returns the `user` and `group` settings of qemu.conf text ("" when commented out or
// absent). Values are names or "+N" numeric ids, as libvirt accepts them.
func ParseQEMUConf(text string) (user, group string) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		key = strings.TrimSpace(key)
		val = strings.TrimSpace(val)
		if i := strings.Index(val, "#"); i >= 0 && !strings.HasPrefix(val, `"`) {
			val = strings.TrimSpace(val[:i])
		}
		if strings.HasPrefix(val, `"`) {
			if j := strings.Index(val[1:], `"`); j >= 0 {
				val = val[1 : j+1]
			}
		}
		switch key {
		case "user":
			user = val
		case "group":
			group = val
		}
	}
	return user, group
}

// QEMUUser finds the user QEMU runs as — never assumed: first an explicit `user =` in qemu.conf, then
// the owner of a running QEMU process, then the owner of libvirt's QEMU state directory (libvirt chowns
// it to that user). The group is qemu.conf's `group =`, else the process's or directory's group.
func QEMUUser(src QEMUSources) (QEMUIdentity, error) {
	if src.QEMUConf == "" {
		src.QEMUConf = "/etc/libvirt/qemu.conf"
	}
	if src.Proc == "" {
		src.Proc = "/proc"
	}
	if src.LibvirtDir == "" {
		src.LibvirtDir = "/var/lib/libvirt/qemu"
	}
	var tried []string
	if b, err := os.ReadFile(src.QEMUConf); err == nil {
		u, g := ParseQEMUConf(string(b))
		if u != "" {
			id, err := src.resolve(u, g)
			if err != nil {
				return QEMUIdentity{}, fmt.Errorf("qemu.conf %s: %w", src.QEMUConf, err)
			}
			id.Source = "qemu.conf"
			id.Evidence = fmt.Sprintf("source=qemu.conf file=%s user=%s group=%s", src.QEMUConf, id.User, id.Group)
			return id, nil
		}
		tried = append(tried, "qemu.conf="+src.QEMUConf+"(no-user-setting)")
	} else {
		tried = append(tried, "qemu.conf="+src.QEMUConf+"(unreadable)")
	}
	if pid, uid, gid, ok := findQEMUProcess(src.Proc); ok {
		id := QEMUIdentity{UID: uid, GID: gid, User: src.Accounts.UserName(uid), Group: src.Accounts.GroupName(gid),
			Source: "process"}
		id.Evidence = fmt.Sprintf("source=process pid=%d user=%s group=%s %s", pid, id.User, id.Group, strings.Join(tried, " "))
		return id, nil
	}
	tried = append(tried, "process=none")
	if fi, err := os.Stat(src.LibvirtDir); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			id := QEMUIdentity{UID: st.Uid, GID: st.Gid, User: src.Accounts.UserName(st.Uid),
				Group: src.Accounts.GroupName(st.Gid), Source: "libvirt-dir"}
			id.Evidence = fmt.Sprintf("source=libvirt-dir dir=%s user=%s group=%s %s", src.LibvirtDir, id.User, id.Group,
				strings.Join(tried, " "))
			return id, nil
		}
	}
	tried = append(tried, "libvirt-dir="+src.LibvirtDir+"(missing)")
	return QEMUIdentity{}, fmt.Errorf("cannot tell which user QEMU runs as (%s): set `user = \"...\"` in %s "+
		"or start a domain first", strings.Join(tried, " "), src.QEMUConf)
}

func (src QEMUSources) resolve(user, group string) (QEMUIdentity, error) {
	id := QEMUIdentity{}
	if strings.HasPrefix(user, "+") {
		n, err := strconv.ParseUint(user[1:], 10, 32)
		if err != nil {
			return id, fmt.Errorf("user %q: bad numeric id", user)
		}
		id.UID, id.User = uint32(n), src.Accounts.UserName(uint32(n))
		id.GID = id.UID
	} else {
		u, ok := src.Accounts.LookupUser(user)
		if !ok {
			return id, fmt.Errorf("user %q is not in the passwd file", user)
		}
		id.UID, id.GID, id.User = u.UID, u.GID, u.Name
	}
	if u, ok := src.Accounts.LookupUser(id.User); ok {
		id.GID = u.GID
	}
	switch {
	case group == "":
	case strings.HasPrefix(group, "+"):
		n, err := strconv.ParseUint(group[1:], 10, 32)
		if err != nil {
			return id, fmt.Errorf("group %q: bad numeric id", group)
		}
		id.GID = uint32(n)
	default:
		g, ok := src.Accounts.LookupGroup(group)
		if !ok {
			return id, fmt.Errorf("group %q is not in the group file", group)
		}
		id.GID = g.GID
	}
	id.Group = src.Accounts.GroupName(id.GID)
	return id, nil
}

// findQEMUProcess returns the first process whose command is a QEMU system emulator.
func findQEMUProcess(proc string) (pid int, uid, gid uint32, ok bool) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return 0, 0, 0, false
	}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(proc, e.Name(), "comm"))
		if err != nil {
			continue
		}
		c := strings.TrimSpace(string(comm))
		if !strings.HasPrefix(c, "qemu-system") && c != "qemu-kvm" {
			continue
		}
		status, err := os.ReadFile(filepath.Join(proc, e.Name(), "status"))
		if err != nil {
			continue
		}
		u, g, found := parseStatusIDs(string(status))
		if found {
			return n, u, g, true
		}
	}
	return 0, 0, 0, false
}

// parseStatusIDs reads the effective uid and gid from /proc/PID/status text.
func parseStatusIDs(status string) (uid, gid uint32, ok bool) {
	var haveU, haveG bool
	for _, line := range strings.Split(status, "\n") {
		k, v, found := strings.Cut(line, ":")
		if !found {
			continue
		}
		f := strings.Fields(v)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil {
			continue
		}
		switch k {
		case "Uid":
			uid, haveU = uint32(n), true
		case "Gid":
			gid, haveG = uint32(n), true
		}
	}
	return uid, gid, haveU && haveG
}
