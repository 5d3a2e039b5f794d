package sockaccess

import (
	"io/fs"
	"math"
	"sort"
	"strings"

	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// Node is what the evaluation needs to know about one component of a socket's path.
type Node struct {
	// Path of the component ("/", "/var", ..., the socket).
	Path string
	// UID owns the component.
	UID uint32
	// GID is its group.
	GID uint32
	// Mode carries the type bits (fs.ModeDir, fs.ModeSocket) and the permission bits.
	Mode fs.FileMode
	// HasACL is true when a POSIX access ACL is set (reported, not evaluated).
	HasACL bool
}

// Options tune the evaluation.
type Options struct {
	// Trusted users are not counted as exposure: QEMU's own user runs the guest anyway.
	Trusted []string
}

const (
	permX = 1 // search, needed on every directory
	permW = 2 // write, needed on the socket to connect()
)

// need returns the permission bit connect() needs on the i-th node of a chain of n.
func need(i, n int) fs.FileMode {
	if i == n-1 {
		return permW
	}
	return permX
}

// grants reports whether the triplet shift (2 = owner, 1 = group, 0 = other) of mode has bit set.
// POSIX applies only the first class that matches a caller, even when a later one grants more.
func grants(mode fs.FileMode, shift uint, bit fs.FileMode) bool {
	return (mode.Perm()>>(3*shift))&bit != 0
}

type principal struct {
	name string
	uid  uint32
	gids map[uint32]bool
}

func (p principal) allowed(n Node, bit fs.FileMode) bool {
	switch {
	case p.uid == n.UID:
		return grants(n.Mode, 2, bit)
	case p.gids[n.GID]:
		return grants(n.Mode, 1, bit)
	default:
		return grants(n.Mode, 0, bit)
	}
}

func (p principal) canConnect(chain []Node) bool {
	for i, n := range chain {
		if !p.allowed(n, need(i, len(chain))) {
			return false
		}
	}
	return true
}

// Evaluate says which non-root users can connect() to the unix socket that is the last element of
// chain, the directories from "/" down being the others: connect() needs search (x) permission on
// every directory and write (w) permission on the socket, each judged by the first matching class
// (owner, group, other). Root is never listed (it bypasses these checks), nor are opts.Trusted users.
//
// Everyone is set when a user with no ownership and no group of the chain gets in. Otherwise Groups
// names every group whose members get in by membership alone — even when it has no member today,
// since adding users to it (kvm, libvirt) is routine — with its current members; Users names the
// remaining users who get in (owners, or combinations of ownership and groups).
func Evaluate(chain []Node, acc Accounts, opts Options) snapshot.SocketAccess {
	if len(chain) == 0 {
		return snapshot.SocketAccess{Evidence: "error=empty-path"}
	}
	sock := chain[len(chain)-1]
	out := snapshot.SocketAccess{
		Path:  sock.Path,
		Owner: acc.UserName(sock.UID),
		Group: acc.GroupName(sock.GID),
		Mode:  FormatMode(sock.Mode),
	}
	trusted := map[string]bool{}
	for _, t := range opts.Trusted {
		trusted[t] = true
	}
	ev := []string{"path=" + sock.Path, "socket=" + nodeWord(sock, acc)}
	if sock.Mode.Type() != fs.ModeSocket {
		ev = append(ev, "type=not-a-socket")
	}
	var gates, acls []string
	for i, n := range chain {
		if !grants(n.Mode, 0, need(i, len(chain))) {
			gates = append(gates, nodeWord(n, acc))
		}
		if n.HasACL {
			acls = append(acls, n.Path)
		}
	}
	stranger := principal{name: "(anyone)", uid: math.MaxUint32, gids: map[uint32]bool{}}
	if stranger.canConnect(chain) {
		out.Everyone = true
	}

	// Group doors: a new member of the group, owning nothing, gets in.
	groupDoors := map[uint32]bool{}
	if !out.Everyone {
		seen := map[uint32]bool{}
		for _, n := range chain {
			if seen[n.GID] {
				continue
			}
			seen[n.GID] = true
			p := principal{uid: math.MaxUint32, gids: map[uint32]bool{n.GID: true}}
			if p.canConnect(chain) {
				groupDoors[n.GID] = true
			}
		}
	}

	// Every real user, plus names that only appear as group members.
	var people []principal
	known := map[string]bool{}
	for _, u := range acc.Users {
		known[u.Name] = true
		people = append(people, principal{name: u.Name, uid: u.UID, gids: acc.gidsOf(u)})
	}
	for _, g := range acc.Groups {
		for _, m := range g.Members {
			if !known[m] {
				known[m] = true
				people = append(people, principal{name: m, uid: math.MaxUint32 - 1,
					gids: acc.gidsOf(User{Name: m, UID: math.MaxUint32 - 1, GID: math.MaxUint32})})
			}
		}
	}
	allowed := map[string]bool{}
	var allowedNames, skipped []string
	for _, p := range people {
		if p.uid == 0 || !p.canConnect(chain) {
			continue
		}
		if trusted[p.name] {
			skipped = append(skipped, p.name)
			continue
		}
		allowed[p.name] = true
		allowedNames = append(allowedNames, p.name)
	}
	inGroupDoor := map[string]bool{}
	if len(groupDoors) > 0 {
		out.Groups = map[string][]string{}
		for gid := range groupDoors {
			members := []string{}
			for _, m := range acc.membersOf(gid) {
				if allowed[m] {
					members = append(members, m)
					inGroupDoor[m] = true
				}
			}
			out.Groups[acc.GroupName(gid)] = members
		}
	}
	if !out.Everyone {
		for _, n := range allowedNames {
			if !inGroupDoor[n] {
				out.Users = append(out.Users, n)
			}
		}
	}
	sort.Strings(out.Users)
	sort.Strings(allowedNames)
	sort.Strings(skipped)

	ev = append(ev, "gates="+orNone(strings.Join(gates, ",")), "everyone="+yesNo(out.Everyone))
	var gnames []string
	for g := range out.Groups {
		gnames = append(gnames, g)
	}
	sort.Strings(gnames)
	ev = append(ev, "groups="+orNone(strings.Join(gnames, ",")),
		"users="+orNone(strings.Join(out.Users, ",")),
		"can_connect="+orNone(strings.Join(allowedNames, ",")),
		"trusted="+orNone(strings.Join(skipped, ",")),
		"acl="+orNone(strings.Join(acls, ",")))
	out.Evidence = strings.Join(ev, " ")
	return out
}

// Who renders the people who get in for messages: "everyone", "group kvm: alice, bob; user carol",
// "group kvm (no members)", or "root only".
func Who(a snapshot.SocketAccess) string {
	if a.Everyone {
		return "everyone"
	}
	var parts []string
	var gnames []string
	for g := range a.Groups {
		gnames = append(gnames, g)
	}
	sort.Strings(gnames)
	for _, g := range gnames {
		if len(a.Groups[g]) == 0 {
			parts = append(parts, "group "+g+" (no members)")
		} else {
			parts = append(parts, "group "+g+": "+strings.Join(a.Groups[g], ", "))
		}
	}
	for _, u := range a.Users {
		parts = append(parts, "user "+u)
	}
	if len(parts) == 0 {
		return "root only"
	}
	return strings.Join(parts, "; ")
}

func nodeWord(n Node, acc Accounts) string {
	return n.Path + ":" + FormatMode(n.Mode) + ":" + acc.UserName(n.UID) + ":" + acc.GroupName(n.GID)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// FormatMode renders a mode the way `ls -l` does: "srwxrwxr-x", "drwxr-x---", "-rw-r--r--", with
// s/S/t/T for setuid, setgid and sticky.
func FormatMode(m fs.FileMode) string {
	b := []byte("----------")
	switch m.Type() {
	case fs.ModeDir:
		b[0] = 'd'
	case fs.ModeSocket:
		b[0] = 's'
	case fs.ModeSymlink:
		b[0] = 'l'
	case fs.ModeNamedPipe:
		b[0] = 'p'
	case fs.ModeDevice:
		b[0] = 'b'
	case fs.ModeDevice | fs.ModeCharDevice:
		b[0] = 'c'
	}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if m.Perm()&(1<<(8-i)) != 0 {
			b[i+1] = rwx[i]
		}
	}
	special := func(pos int, set bool, lower, upper byte) {
		if !set {
			return
		}
		if b[pos] == 'x' {
			b[pos] = lower
		} else {
			b[pos] = upper
		}
	}
	special(3, m&fs.ModeSetuid != 0, 's', 'S')
	special(6, m&fs.ModeSetgid != 0, 's', 'S')
	special(9, m&fs.ModeSticky != 0, 't', 'T')
	return string(b)
}

// CanSearch reports whether user (a name in acc) can traverse every node of chain (x on each, as for
// a directory path), and names the first node that stops it. Root always can.
func CanSearch(chain []Node, acc Accounts, user string) (bool, string) {
	u, ok := acc.LookupUser(user)
	if !ok {
		return false, "user " + user + " unknown"
	}
	if u.UID == 0 {
		return true, ""
	}
	p := principal{name: u.Name, uid: u.UID, gids: acc.gidsOf(u)}
	for _, n := range chain {
		if !p.allowed(n, permX) {
			return false, nodeWord(n, acc)
		}
	}
	return true, ""
}
