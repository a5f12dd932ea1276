//go:build faults && cluster

package main

// The failover scenarios on the cluster stack (make cluster-up; run by make
// test-cluster): three `stockflow serve` instances on a three-broker Kafka
// cluster, reached over SASL_SSL, and a Redis Cluster of three masters with
// a replica each. Under a steady stream of source events and a stream of
// holds, one of: a Redis master killed with kill -9 (its replica takes
// over), a broker killed and restarted, an instance killed. After each the
// ledger passes `stockflow verify`, equals an undisturbed fold of the same
// events, and no hold was oversold. Then a shard that loses all its data
// (both its nodes) is repaired from the ledger log for its SKUs alone.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/sim"
	"github.com/stockflow/stockflow/pkg/testenv"
)

func newClusterScenario(t *testing.T) *scenario {
	t.Helper()
	s := &scenario{t: t, cfg: testenv.ClusterConfig(t), dir: t.TempDir()}
	s.setUp()
	return s
}

// cluster runs a verb of deploy/local/cluster.sh and returns what it printed.
func cluster(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join("..", "..", "deploy", "local", "cluster.sh"), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cluster.sh %v: %v\n%s", args, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// longestGap is the longest time after from without a decided hold.
func longestGap(decided []time.Time, from time.Time) time.Duration {
	sort.Slice(decided, func(i, j int) bool { return decided[i].Before(decided[j]) })
	var gap time.Duration
	prev := from
	for _, d := range decided {
		if d.Before(from) {
			continue
		}
		gap = max(gap, d.Sub(prev))
		prev = d
	}
	return gap
}

func TestClusterFaults(t *testing.T) {
	n := soaked(6000)
	const stock, requests = 250, 700

	// fault injects one fault into a running scenario, mid-stream, and
	// returns what it did for the report; undo runs once the stream is over.
	type fault struct {
		name   string
		inject func(t *testing.T, s *scenario, replace func(i int) *proc) (detail string, undo func())
	}
	faults := []fault{
		{"kill -9 a Redis master, its replica promoted", func(t *testing.T, s *scenario, _ func(int) *proc) (string, func()) {
			// The master of the storm SKU's slot: holds are decided there.
			port := cluster(t, "redis-master-of-slot", strconv.Itoa(int(ledger.Slot("{STORM}"))))
			cluster(t, "kill-redis", port)
			got := strings.Fields(cluster(t, "redis-failover-wait", port))
			if len(got) != 2 {
				t.Fatalf("redis-failover-wait printed %q", got)
			}
			return fmt.Sprintf("master %s killed, replica %s promoted after %ss", port, got[0], got[1]), func() { cluster(t, "start-redis", port) }
		}},
		{"kill -9 a Redis master while its replica lags, the replica promoted without the last writes", func(t *testing.T, s *scenario, _ func(int) *proc) (string, func()) {
			port := cluster(t, "redis-master-of-slot", strconv.Itoa(int(ledger.Slot("{STORM}"))))
			replica := replicaOf(t, port)
			pid := redisPid(t, replica)
			// The replica stops reading the replication stream for 3 s
			// of writes, then its master dies: it is promoted without them.
			syscall.Kill(pid, syscall.SIGSTOP)
			time.Sleep(3 * time.Second)
			cluster(t, "kill-redis", port)
			time.Sleep(time.Second)
			syscall.Kill(pid, syscall.SIGCONT)
			got := strings.Fields(cluster(t, "redis-failover-wait", port))
			if len(got) != 2 || got[0] != replica {
				t.Fatalf("redis-failover-wait printed %q, want the lagging replica %s promoted", got, replica)
			}
			return fmt.Sprintf("replica %s paused 4 s, master %s killed during the pause, the replica promoted after %ss", replica, port, got[1]),
				func() { cluster(t, "start-redis", port) }
		}},
		{"kill -9 a broker, restart it", func(t *testing.T, s *scenario, _ func(int) *proc) (string, func()) {
			cluster(t, "kill-broker", "2")
			time.Sleep(5 * time.Second)
			secs := cluster(t, "start-broker", "2")
			return "broker 2 killed, back after 5s + " + secs + "s", func() {}
		}},
		{"kill -9 an instance, restart it", func(t *testing.T, s *scenario, replace func(int) *proc) (string, func()) {
			replace(1)
			return "instance b killed, restarted after 5s", func() {}
		}},
	}
	for i, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			seed := uint64(100 + i)
			s := newClusterScenario(t)
			var mu sync.Mutex
			procs := []*proc{s.start("a"), s.start("b"), s.start("c")}
			replace := func(k int) *proc {
				mu.Lock()
				p := procs[k]
				mu.Unlock()
				p.kill()
				time.Sleep(5 * time.Second)
				np := s.start(p.name + "1") // the same instance id, as a StatefulSet pod
				mu.Lock()
				procs[k] = np
				mu.Unlock()
				return np
			}
			s.stock(stock)
			done := s.generateAsync(s.newGen(seed), n, 150)
			type stormResult struct {
				answers map[string][]int
				decided []time.Time
			}
			storm := make(chan stormResult, 1)
			go func() {
				a, d := s.holdStorm(requests, 50*time.Millisecond, func(k int) *proc {
					mu.Lock()
					defer mu.Unlock()
					return procs[k%3]
				})
				storm <- stormResult{a, d}
			}()
			time.Sleep(12 * time.Second)
			at := time.Now()
			detail, undo := f.inject(t, s, replace)
			<-done
			res := <-storm
			rec := s.caughtUp(3 * time.Minute)
			held, unavailable := checkStorm(t, res.answers, requests, stock)
			rdb := s.rdb()
			defer rdb.Close()
			p, err := s.store(rdb).Position(context.Background(), "STORM", "L1", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if p.Held != int64(held) {
				t.Fatalf("the ledger holds %d units, clients were told %d holds succeeded", p.Held, held)
			}
			undo()
			s.verify()
			s.equalsReference(seed, n)
			s.outputsMatchLedger()
			s.commitmentsMatchLedger()
			reread := 0
			for _, p := range s.procs {
				b, _ := os.ReadFile(filepath.Join(s.dir, p.name+".log"))
				reread += strings.Count(string(b), "redis went back in time") + strings.Count(string(b), "masters changed while a poll was written")
			}
			t.Logf("RESULT cluster %s: %s; rewinds logged %d; %d source events and %d holds (%d held of %d units, %d answers 503, retried); the longest time without a hold decided after the fault %v; caught up %v after the stream ended",
				f.name, detail, reread, n, requests, held, stock, unavailable, longestGap(res.decided, at).Round(100*time.Millisecond), rec.Round(100*time.Millisecond))
		})
	}

	t.Run("a shard loses all its data: its SKUs folded again from the log, the others left as they are", func(t *testing.T) {
		s := newClusterScenario(t)
		for _, name := range []string{"a", "b", "c"} {
			s.start(name)
		}
		ctx := context.Background()
		gen := s.newGen(200)
		s.generate(ctx, gen, n, 0, 0, false)
		s.caughtUp(3 * time.Minute)
		rdb := s.rdb()
		defer rdb.Close()
		st := s.store(rdb)
		before := positions(t, st)

		// The shard of SKU 0's slot: FLUSHALL on its master, which its
		// replica follows, as a shard restarted without its data would be.
		port := cluster(t, "redis-master-of-slot", strconv.Itoa(int(ledger.Slot("{"+sim.SKU(0)+"}"))))
		node := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
		defer node.Close()
		lost := map[string]bool{}
		for k := range before {
			sku, _, _ := strings.Cut(k, "@")
			n, err := node.Exists(ctx, st.SKUKey(sku)+":p:"+strings.SplitN(k, "@", 2)[1]).Result()
			if err != nil && !strings.HasPrefix(err.Error(), "MOVED") {
				t.Fatal(err)
			}
			lost[k] = n == 1
		}
		if err := node.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var after map[string]ledger.Position
		waitFor(t, 3*time.Minute, func() bool {
			after = positions(t, st)
			for k, b := range before {
				if after[k].Components != b.Components {
					return false
				}
			}
			return true
		})
		took := time.Since(start)
		refolded, untouched := 0, 0
		for k, b := range before {
			if lost[k] {
				refolded++
				continue
			}
			if after[k].Version != b.Version {
				t.Fatalf("%s on a shard that lost nothing was written again: version %d, then %d", k, b.Version, after[k].Version)
			}
			untouched++
		}
		if refolded == 0 || untouched == 0 {
			t.Fatalf("%d positions on the lost shard, %d elsewhere: the scenario needs both", refolded, untouched)
		}
		noticed := false
		for _, p := range s.procs {
			b, _ := os.ReadFile(filepath.Join(s.dir, p.name+".log"))
			noticed = noticed || strings.Contains(string(b), "a redis cluster shard lost its data") || strings.Contains(string(b), "redis went back in time")
		}
		if !noticed {
			t.Fatal("no instance logged the shard's loss or a rewind")
		}
		// The stream goes on, its orders and POs resolved through the
		// document index the shard lost part of.
		more := soaked(1500)
		s.generate(ctx, gen, more, 0, 0, true)
		rec := s.caughtUp(3 * time.Minute)
		if dead := s.deadLetters(); len(dead) > 0 {
			t.Fatalf("dead-lettered: %q", dead)
		}
		s.verify()
		s.equalsReference(200, n+more)
		t.Logf("RESULT cluster shard-lost: master %s flushed; %d positions on it folded again from the log in %v, %d positions on the other shards left unwritten; %d more events caught up %v after",
			port, refolded, took.Round(100*time.Millisecond), untouched, more, rec.Round(100*time.Millisecond))
	})
}

// replicaOf returns the port of the replica of the master on port.
func replicaOf(t *testing.T, port string) string {
	t.Helper()
	m := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
	defer m.Close()
	info, err := m.Info(context.Background(), "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(info, "slave0:")
	if !ok {
		t.Fatalf("master %s has no replica:\n%s", port, info)
	}
	_, rest, _ = strings.Cut(rest, "port=")
	p, _, _ := strings.Cut(rest, ",")
	return p
}

// redisPid returns the process id of the redis-server on port.
func redisPid(t *testing.T, port string) int {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
	defer c.Close()
	info, err := c.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(info, "process_id:")
	id, _, _ := strings.Cut(rest, "\r\n")
	pid, err := strconv.Atoi(strings.TrimSpace(id))
	if err != nil {
		t.Fatalf("process_id of %s: %v", port, err)
	}
	return pid
}
