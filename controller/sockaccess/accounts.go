package sockaccess

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// User is one /etc/passwd entry.
type User struct {
	// Name is the login name.
	Name string
	// UID is the user id.
	UID uint32
	// GID is the primary group id.
	GID uint32
}

// Group is one /etc/group entry.
type Group struct {
	// Name of the group.
	Name string
	// GID is the group id.
	GID uint32
	// Members are the supplementary members listed in /etc/group.
	Members []string
}

// Accounts are the host's users and groups.
type Accounts struct {
	// Users from /etc/passwd.
	Users []User
	// Groups from /etc/group.
	Groups []Group
}

// ParsePasswd reads /etc/passwd text. Comment and malformed lines are skipped; the line numbers of
// malformed ones are returned in the error only when nothing could be read.
func ParsePasswd(r io.Reader) ([]User, error) {
	return parseColonFile(r, "passwd", 4, func(f []string) (User, bool) {
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			return User{}, false
		}
		return User{Name: f[0], UID: uint32(uid), GID: uint32(gid)}, true
	})
}

// ParseGroup reads /etc/group text, with the same rules as ParsePasswd.
func ParseGroup(r io.Reader) ([]Group, error) {
	return parseColonFile(r, "group", 3, func(f []string) (Group, bool) {
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return Group{}, false
		}
		g := Group{Name: f[0], GID: uint32(gid)}
		if len(f) > 3 {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					g.Members = append(g.Members, m)
				}
			}
		}
		return g, true
	})
}

// parseColonFile reads a colon-separated account file (passwd, group): blank and # lines are
// skipped, a line with fewer than minFields fields, an empty first field, or one parse rejects is
// malformed. Malformed line numbers are reported only when no entry could be read.
func parseColonFile[T any](r io.Reader, name string, minFields int, parse func([]string) (T, bool)) ([]T, error) {
	var out []T
	var bad []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < minFields || f[0] == "" {
			bad = append(bad, strconv.Itoa(n))
			continue
		}
		v, ok := parse(f)
		if !ok {
			bad = append(bad, strconv.Itoa(n))
			continue
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read %s: %w", name, err)
	}
	if len(out) == 0 && len(bad) > 0 {
		return nil, fmt.Errorf("%s: no valid entry (malformed lines %s)", name, strings.Join(bad, ","))
	}
	return out, nil
}

// UserName returns the name of uid, or "uid:N" when unknown.
func (a Accounts) UserName(uid uint32) string {
	for _, u := range a.Users {
		if u.UID == uid {
			return u.Name
		}
	}
	return "uid:" + strconv.FormatUint(uint64(uid), 10)
}

// GroupName returns the name of gid, or "gid:N" when unknown.
func (a Accounts) GroupName(gid uint32) string {
	for _, g := range a.Groups {
		if g.GID == gid {
			return g.Name
		}
	}
	return "gid:" + strconv.FormatUint(uint64(gid), 10)
}

// LookupUser finds a user by name.
func (a Accounts) LookupUser(name string) (User, bool) {
	for _, u := range a.Users {
		if u.Name == name {
			return u, true
		}
	}
	return User{}, false
}

// LookupGroup finds a group by name.
func (a Accounts) LookupGroup(name string) (Group, bool) {
	for _, g := range a.Groups {
		if g.Name == name {
			return g, true
		}
	}
	return Group{}, false
}

// gidsOf returns the user's primary and supplementary group ids.
func (a Accounts) gidsOf(u User) map[uint32]bool {
	gids := map[uint32]bool{u.GID: true}
	for _, g := range a.Groups {
		for _, m := range g.Members {
			if m == u.Name {
				gids[g.GID] = true
			}
		}
	}
	return gids
}

// membersOf returns the sorted names of every user in gid: explicit members and users whose primary
// group it is. Names listed in /etc/group without a passwd entry are kept (they may come from NSS).
func (a Accounts) membersOf(gid uint32) []string {
	set := map[string]bool{}
	for _, u := range a.Users {
		if u.GID == gid {
			set[u.Name] = true
		}
	}
	for _, g := range a.Groups {
		if g.GID == gid {
			for _, m := range g.Members {
				set[m] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
