package collect

import (
	"fmt"
	"sort"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

// What a guest may report is bounded here, at collection, before diagnosis or anything else sees
// it: a reply under the 4 MiB message cap can still carry 200,000 interfaces or 100,000 profiles,
// and every finding that names them would multiply them. The caps are far above any real guest.
const (
	// MaxListItems bounds every list in a reply (interfaces, addresses of one interface, routes,
	// profiles, DNS servers, collection errors, check results, ...).
	MaxListItems = 256
	// MaxStringBytes bounds every string in a reply (names, errors, diffs); longer ones are cut on a
	// UTF-8 boundary and end in "…".
	MaxStringBytes = 1024
)

// Bound cuts every list and string of m (a reply from a guest) to MaxListItems and MaxStringBytes,
// in place, and returns what it cut: one line per field, with the largest count seen.
func Bound(m proto.Message) []string {
	cut := map[string]int{}
	bound(m.ProtoReflect(), cut)
	var notes []string
	for f, n := range cut {
		notes = append(notes, fmt.Sprintf("kvmnetctl cut %s: %d items, kept %d", f, n, MaxListItems))
	}
	sort.Strings(notes)
	return notes
}

// BoundState bounds a GuestState and records what was cut among its collection errors.
func BoundState(st *kvmnetv1.GuestState) {
	notes := Bound(st)
	st.CollectionErrors = append(st.CollectionErrors, notes...)
}

func bound(m protoreflect.Message, cut map[string]int) {
	var fields []protoreflect.FieldDescriptor
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		fields = append(fields, fd)
		return true
	})
	for _, fd := range fields {
		v := m.Get(fd)
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			if l.Len() > MaxListItems {
				cut[string(fd.FullName())] = max(cut[string(fd.FullName())], l.Len())
				l.Truncate(MaxListItems)
			}
			for i := 0; i < l.Len(); i++ {
				switch fd.Kind() {
				case protoreflect.MessageKind, protoreflect.GroupKind:
					bound(l.Get(i).Message(), cut)
				case protoreflect.StringKind:
					if s := l.Get(i).String(); len(s) > MaxStringBytes {
						l.Set(i, protoreflect.ValueOfString(cutString(s)))
					}
				}
			}
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			n := 0
			var drop []protoreflect.MapKey
			mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				n++
				if n > MaxListItems {
					drop = append(drop, k)
				}
				return true
			})
			if len(drop) > 0 {
				cut[string(fd.FullName())] = max(cut[string(fd.FullName())], n)
			}
			for _, k := range drop {
				mp.Clear(k)
			}
			mp.Range(func(k protoreflect.MapKey, val protoreflect.Value) bool {
				switch fd.MapValue().Kind() {
				case protoreflect.MessageKind:
					bound(val.Message(), cut)
				case protoreflect.StringKind:
					if s := val.String(); len(s) > MaxStringBytes {
						mp.Set(k, protoreflect.ValueOfString(cutString(s)))
					}
				}
				return true
			})
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			bound(m.Mutable(fd).Message(), cut)
		case fd.Kind() == protoreflect.StringKind:
			if s := v.String(); len(s) > MaxStringBytes {
				m.Set(fd, protoreflect.ValueOfString(cutString(s)))
			}
		}
	}
}

// cutString keeps the first MaxStringBytes bytes of s, on a rune boundary, and marks the cut.
func cutString(s string) string {
	n := MaxStringBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
