package testcluster_test

import (
	"context"
	"testing"
	"time"

	"depot/nameserver/nsclient"
)

// TestHA_ForwardKeepsRequestID repeats a change under one request id
// through a follower, which forwards it to the leader, and then on the
// leader itself: the repeats answer the first result. Before, the repeat
// was applied again and a second CreateBucket answered Exists; that is
// what a client saw when a follower's forward lost the leader's answer.
func TestHA_ForwardKeepsRequestID(t *testing.T) {
	c := haCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader := c.Leader()
	if leader < 0 {
		t.Fatal("no leader")
	}
	follower := (leader + 1) % c.Nameservers()
	via := func(i int) *nsclient.Client {
		return nsclient.NewTLS(c.Nameserver(i).Server.URL(), c.Key, c.TLS)
	}
	rctx := nsclient.WithRequestID(ctx, "create-fwd-once")
	first, err := via(follower).CreateBucket(rctx, "fwd")
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{follower, leader} {
		again, err := via(i).CreateBucket(rctx, "fwd")
		if err != nil || !again.Created.Equal(first.Created) {
			t.Fatalf("repeat through nameserver %d: %+v, %v; want the first answer %+v", i, again, err, first)
		}
	}
	// Another id is another call: it is applied, and refused.
	if _, err := via(follower).CreateBucket(ctx, "fwd"); err == nil {
		t.Fatal("a new CreateBucket of an existing bucket succeeded")
	}
}
