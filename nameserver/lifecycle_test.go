package nameserver

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"depot"
	"depot/nameserver/nsclient"
)

// TestLifecycle_Pass drives lifecycle passes on a clock moved forward:
// expiry by days with prefix and tag filters (other keys untouched);
// in a versioned bucket a delete marker, then the non-current versions a
// day after they stopped being current, then the marker left alone;
// Object Lock keeping a version; old multipart uploads aborted; an expiry
// chosen before the key was written again does not hit the new write.
func TestLifecycle_Pass(t *testing.T) {
	c := MustCluster(t, nil, func(cfg *Config) { cfg.LifecycleInterval = 0 })
	ctx := ctxT(t)
	cl := c.client
	now := time.Now()
	c.srv.lifecycleNow = func() time.Time { return now }
	day := 24 * time.Hour
	pass := func() {
		t.Helper()
		if err := c.srv.lifecyclePass(ctx, rate.NewLimiter(rate.Inf, 1)); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(bucket, key string) bool {
		t.Helper()
		_, err := cl.GetObject(ctx, bucket, key)
		if err != nil && !errors.Is(err, depot.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	setRules := func(bucket string, rules ...nsclient.LifecycleRule) {
		t.Helper()
		if _, err := cl.SetBucket(ctx, bucket, nsclient.BucketSettings{Lifecycle: &rules}); err != nil {
			t.Fatal(err)
		}
	}

	// Unversioned: prefix and tags.
	if _, err := cl.CreateBucket(ctx, "plain"); err != nil {
		t.Fatal(err)
	}
	n := uint64(1)
	put := func(bucket, key string, meta map[string]string) depot.Object {
		t.Helper()
		o := object(bucket, key, n, 10)
		o.Meta = meta
		n++
		if _, err := cl.PutObject(ctx, o); err != nil {
			t.Fatal(err)
		}
		got, err := cl.GetObject(ctx, bucket, key)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	put("plain", "tmp/a", nil)
	put("plain", "keep/b", nil)
	put("plain", "tagged", map[string]string{"x-amz-tagging": "class=scratch&team=x"})
	put("plain", "other-tag", map[string]string{"x-amz-tagging": "class=gold"})
	setRules("plain",
		nsclient.LifecycleRule{ID: "tmp", Enabled: true, Prefix: "tmp/", ExpireDays: 1},
		nsclient.LifecycleRule{ID: "scratch", Enabled: true, Tags: map[string]string{"class": "scratch"}, ExpireDays: 2},
		nsclient.LifecycleRule{ID: "off", Enabled: false, Prefix: "keep/", ExpireDays: 1})
	pass()
	if !exists("plain", "tmp/a") {
		t.Fatal("expired before its day")
	}
	now = now.Add(day + time.Minute)
	pass()
	if exists("plain", "tmp/a") || !exists("plain", "keep/b") || !exists("plain", "tagged") {
		t.Fatal("after one day: tmp/a should be gone, keep/b and tagged kept")
	}
	now = now.Add(day)
	pass()
	if exists("plain", "tagged") || !exists("plain", "other-tag") {
		t.Fatal("after two days: the scratch-tagged object should be gone, the gold one kept")
	}

	// A stale choice does not expire a newer write.
	stale := put("plain", "race", nil)
	put("plain", "race", nil) // written again after being chosen
	act := lifecycleAction{kind: "expire", key: "race", current: &currentVersion{VersionID: stale.VersionID, Modified: stale.Modified}}
	if err := c.srv.lifecycleApply(ctx, "plain", []lifecycleAction{act}, rate.NewLimiter(rate.Inf, 1)); err != nil {
		t.Fatal(err)
	}
	if !exists("plain", "race") {
		t.Fatal("an expiry chosen before a newer write deleted it")
	}

	// Versioned: marker, non-current versions, then the lone marker.
	if _, err := cl.CreateBucket(ctx, "hist"); err != nil {
		t.Fatal(err)
	}
	en := nsclient.VersioningEnabled
	if _, err := cl.SetBucket(ctx, "hist", nsclient.BucketSettings{Versioning: &en}); err != nil {
		t.Fatal(err)
	}
	put("hist", "k", nil)
	put("hist", "k", nil)
	setRules("hist", nsclient.LifecycleRule{Enabled: true, ExpireDays: 1, NoncurrentDays: 1},
		nsclient.LifecycleRule{Enabled: true, ExpiredDeleteMarker: true})
	versions := func() []nsclient.VersionEntry {
		t.Helper()
		l, err := cl.ListVersions(ctx, "hist", nsclient.VersionListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l.Versions
	}
	now = time.Now().Add(day + time.Minute)
	pass()
	if v := versions(); len(v) != 2 || !v[0].DeleteMarker || !v[0].IsLatest {
		t.Fatalf("after a day: want a marker over the newest version, the older one gone: %+v", v)
	}
	now = now.Add(day + time.Minute)
	pass() // the second version became non-current at the marker's time
	if v := versions(); len(v) != 1 || !v[0].DeleteMarker {
		t.Fatalf("two days on: want the marker alone: %+v", v)
	}
	pass()
	if v := versions(); len(v) != 0 {
		t.Fatalf("the lone marker stayed: %+v", v)
	}

	// Object Lock keeps a version; uploads are aborted.
	if _, err := cl.CreateBucket(ctx, "vault"); err != nil {
		t.Fatal(err)
	}
	on := true
	if _, err := cl.SetBucket(ctx, "vault", nsclient.BucketSettings{ObjectLock: &on}); err != nil {
		t.Fatal(err)
	}
	lo := object("vault", "held", n, 10)
	n++
	lo.Lock = &depot.ObjectLock{LegalHold: true}
	if _, err := cl.PutObject(ctx, lo); err != nil {
		t.Fatal(err)
	}
	put("vault", "held", nil) // the held version becomes non-current
	if _, err := cl.CreateUpload(ctx, nsclient.Upload{Bucket: "vault", Key: "big", ID: "u1"}); err != nil {
		t.Fatal(err)
	}
	setRules("vault", nsclient.LifecycleRule{Enabled: true, NoncurrentDays: 1, AbortUploadDays: 1})
	now = time.Now().Add(day + time.Minute)
	pass()
	l, err := cl.ListVersions(ctx, "vault", nsclient.VersionListOptions{})
	if err != nil || len(l.Versions) != 2 || l.Versions[1].Lock == nil {
		t.Fatalf("the held version: %+v, %v", l.Versions, err)
	}
	if _, err := cl.Upload(ctx, "vault", "big", "u1"); !errors.Is(err, depot.ErrNotFound) {
		t.Fatalf("an old upload was not aborted: %v", err)
	}
}

// TestLifecycle_Rules checks what a configuration may hold.
func TestLifecycle_Rules(t *testing.T) {
	date := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		rules []nsclient.LifecycleRule
		ok    bool
	}{
		{"Days", []nsclient.LifecycleRule{{ExpireDays: 3}}, true},
		{"NoAction", []nsclient.LifecycleRule{{Prefix: "a"}}, false},
		{"DaysAndDate", []nsclient.LifecycleRule{{ExpireDays: 3, ExpireDate: date}}, false},
		{"MarkerAndDays", []nsclient.LifecycleRule{{ExpireDays: 3, ExpiredDeleteMarker: true}}, false},
		{"SameID", []nsclient.LifecycleRule{{ID: "a", ExpireDays: 1}, {ID: "a", ExpireDays: 2}}, false},
		{"Sizes", []nsclient.LifecycleRule{{ExpireDays: 1, SizeGreaterThan: 10, SizeLessThan: 5}}, false},
		{"Negative", []nsclient.LifecycleRule{{ExpireDays: -1}}, false},
	} {
		if err := checkLifecycle(tc.rules); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
