package membership_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"depot"
	"depot/internal/auth"
	"depot/internal/membership"
)

// MustStart starts a member on 127.0.0.1 with a free port and the test
// timings, joined to join, and closes it when the test ends.
func MustStart(t *testing.T, name string, key auth.Key, join ...string) *membership.Membership {
	t.Helper()
	m, err := membership.New(membership.Config{
		Name:     name,
		BindAddr: "127.0.0.1:0",
		Key:      key,
		Meta:     membership.NodeMeta{Role: depot.RoleDataserver, Addr: "127.0.0.1:1", Rack: "r1", Free: 100},
		Join:     join,
		Logger:   slog.New(slog.DiscardHandler),
		Timing:   membership.TimingTest,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func mustKey(t *testing.T) auth.Key {
	t.Helper()
	k, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stateOf(m *membership.Membership, name string) (membership.Node, bool) {
	for _, n := range m.Members() {
		if n.Meta.ID == name {
			return n, true
		}
	}
	return membership.Node{}, false
}

func aliveCount(m *membership.Membership) int {
	n := 0
	for _, x := range m.Members() {
		if x.State == membership.StateAlive {
			n++
		}
	}
	return n
}

func TestMembership_Cluster(t *testing.T) {
	key := mustKey(t)
	a := MustStart(t, "a", key)
	b := MustStart(t, "b", key, a.GossipAddr())
	c := MustStart(t, "c", key, a.GossipAddr())
	all := []*membership.Membership{a, b, c}

	t.Run("Join", func(t *testing.T) {
		for _, m := range all {
			waitFor(t, 5*time.Second, m.Name()+" sees 3 alive", func() bool { return aliveCount(m) == 3 })
		}
		n, _ := stateOf(b, "c")
		if n.Meta.Role != depot.RoleDataserver || n.Meta.Rack != "r1" || n.Addr == "" {
			t.Fatalf("b's view of c: %+v", n)
		}
	})

	t.Run("UpdateMeta", func(t *testing.T) {
		meta := b.Meta()
		meta.Free = 12345
		meta.Used = 678
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.UpdateMeta(ctx, meta); err != nil {
			t.Fatal(err)
		}
		for _, m := range all {
			waitFor(t, 5*time.Second, m.Name()+" sees b's new free space", func() bool {
				n, _ := stateOf(m, "b")
				return n.Meta.Free == 12345 && n.Meta.Used == 678 && n.State == membership.StateAlive
			})
		}
	})

	t.Run("MetaTooLarge", func(t *testing.T) {
		meta := b.Meta()
		meta.Rack = strings.Repeat("x", 600)
		err := b.UpdateMeta(context.Background(), meta)
		if !errors.Is(err, membership.ErrMetaTooLarge) {
			t.Fatalf("err = %v, want ErrMetaTooLarge", err)
		}
	})

	t.Run("Killed", func(t *testing.T) {
		if err := c.Kill(); err != nil {
			t.Fatal(err)
		}
		sawSuspect := false
		for _, m := range []*membership.Membership{a, b} {
			waitFor(t, 5*time.Second, m.Name()+" sees c dead", func() bool {
				n, _ := stateOf(m, "c")
				sawSuspect = sawSuspect || n.State == membership.StateSuspect
				return n.State == membership.StateDead
			})
		}
		n, _ := stateOf(a, "c")
		if n.Meta.Role != depot.RoleDataserver {
			t.Fatalf("dead node lost its metadata: %+v", n)
		}
		t.Logf("suspect state observed on the way: %v", sawSuspect)
	})

	t.Run("Left", func(t *testing.T) {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		waitFor(t, 5*time.Second, "a sees b left", func() bool {
			n, _ := stateOf(a, "b")
			return n.State == membership.StateLeft
		})
	})
}

func TestMembership_WrongKey(t *testing.T) {
	a := MustStart(t, "a", mustKey(t))
	intruder := MustStart(t, "intruder", mustKey(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := intruder.Join(ctx, []string{a.GossipAddr()}); err == nil {
		t.Fatalf("join with another cluster key succeeded (%d)", n)
	}
	if _, ok := stateOf(a, "intruder"); ok {
		t.Fatal("a lists the intruder")
	}
	if got := aliveCount(intruder); got != 1 {
		t.Fatalf("intruder sees %d alive members, want itself only", got)
	}
}

func TestMembership_Config(t *testing.T) {
	key := mustKey(t)
	for _, tc := range []struct {
		name string
		cfg  membership.Config
	}{
		{"NoName", membership.Config{Key: key}},
		{"NoKey", membership.Config{Name: "x"}},
		{"BadBind", membership.Config{Name: "x", Key: key, BindAddr: "nope"}},
		{"OtherID", membership.Config{Name: "x", Key: key, Meta: membership.NodeMeta{ID: "y"}}},
		{"BigMeta", membership.Config{Name: "x", Key: key, Meta: membership.NodeMeta{Addr: strings.Repeat("a", 513)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := membership.New(tc.cfg); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
	t.Run("GossipKey", func(t *testing.T) {
		k1, k2 := membership.GossipKey(key), membership.GossipKey(key)
		if len(k1) != 32 || fmt.Sprint(k1) != fmt.Sprint(k2) {
			t.Fatalf("gossip key: %x %x", k1, k2)
		}
	})
}
