package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/testing/loadgen"
)

// The full-disk scenarios mount a small tmpfs (this suite runs as root on
// a machine where `mount -t tmpfs` works) under the directory a component
// writes, let it fill, then grow it with `mount -o remount,size=…`.

func init() {
	register(
		Scenario{
			Name:    "disk-full-archive",
			Injects: "the file store's directory (where the archiver writes segments, catalog entries and its lease) is a 1 MiB tmpfs that fills under load; 3-5 s after the first ENOSPC it grows to 256 MiB",
			Checks:  "I1-I6; no partial object is ever listed",
			Run:     diskFullArchive,
		},
		Scenario{
			Name:    "disk-full-nats",
			Injects: "the nats-server process's JetStream store is a 6 MiB tmpfs that fills under load; it then grows to 512 MiB and the server is restarted (it keeps a stream that hit a critical write error failed until then)",
			Checks:  "I1-I6; I5: capture raises tidemark_capture_publish_stalled while JetStream refuses, and skips nothing",
			Run:     diskFullNATS,
		},
		Scenario{
			Name:    "disk-full-capture-spill",
			Injects: "capture spills a 20,000-row transaction (max 1 MiB in memory) to a 2 MiB tmpfs that fills; 3-5 s later it grows to 256 MiB",
			Checks:  "I1-I6; the big transaction is archived and restored whole (I4)",
			Run:     diskFullSpill,
		},
	)
}

// mountTmpfs mounts a tmpfs of size (e.g. "1m") on dir; it is unmounted
// after the rig stops.
func (e *Env) mountTmpfs(dir, size string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0777", "tmpfs", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("mount tmpfs on %s (the full-disk scenarios need root and tmpfs): %v: %s", dir, err, out)
	}
	e.afterRig = append(e.afterRig, func() {
		_ = exec.Command("umount", "-l", dir).Run()
	})
	return nil
}

// growTmpfs resizes a mounted tmpfs.
func growTmpfs(dir, size string) error {
	if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
		return fmt.Errorf("remount %s: %v: %s", dir, err, out)
	}
	return nil
}

// waitLog waits until the file at path contains any of words.
func (e *Env) waitLog(path string, d time.Duration, words ...string) error {
	deadline := time.Now().Add(d)
	for {
		b, _ := os.ReadFile(path)
		for _, w := range words {
			if strings.Contains(string(b), w) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s never mentioned %q within %s", path, words, d)
		}
		if err := e.Sleep(200 * time.Millisecond); err != nil {
			return err
		}
	}
}

func diskFullArchive(e *Env) error {
	dir := filepath.Join(e.Dir, "archive")
	if err := e.mountTmpfs(dir, "1m"); err != nil {
		return err
	}
	if err := e.Boot(Setup{}); err != nil {
		return err
	}
	e.StartLoad(20*time.Second, 0)
	if err := e.waitLog(e.Archivers[0].LogPath, 40*time.Second, "no space left on device"); err != nil {
		return err
	}
	e.Mark()
	if err := e.Sleep(e.Between(3*time.Second, 5*time.Second)); err != nil {
		return err
	}
	if err := growTmpfs(dir, "256m"); err != nil {
		return err
	}
	return e.Finish(CheckOptions{})
}

func diskFullNATS(e *Env) error {
	if err := e.mountTmpfs(filepath.Join(e.Dir, "nats", "jetstream"), "6m"); err != nil {
		return err
	}
	if err := e.Boot(Setup{NATS: "process"}); err != nil {
		return err
	}
	e.StartLoad(20*time.Second, 0)
	node := e.H.NATSNode
	if err := e.waitLog(node.LogPath, 40*time.Second, "no space left on device", "insufficient storage", "resource limits exceeded", "out of space"); err != nil {
		return err
	}
	e.Mark()
	// I5: capture must raise its stall alarm while JetStream refuses.
	if err := e.waitMetric(e.Capture, "tidemark_capture_publish_stalled", 1, 60*time.Second); err != nil {
		return violation("I5", "JetStream refused every publish but %v", err)
	}
	if err := growTmpfs(filepath.Join(e.Dir, "nats", "jetstream"), "512m"); err != nil {
		return err
	}
	// After a critical write error the server keeps the stream failed
	// until it restarts: the operator's fix once the disk has room.
	e.Note("nats_restarted_after_grow")
	if err := node.Stop(); err != nil {
		return err
	}
	if err := node.Start(); err != nil {
		return err
	}
	return e.Finish(CheckOptions{SettleTimeout: 3 * time.Minute})
}

func diskFullSpill(e *Env) error {
	spill := filepath.Join(e.Dir, "spill")
	if err := e.mountTmpfs(spill, "2m"); err != nil {
		return err
	}
	if err := e.Boot(Setup{CaptureArgs: []string{"--max-txn-memory", "1MiB", "--spill-dir", spill}}); err != nil {
		return err
	}
	e.StartLoad(16*time.Second, 0)
	if err := e.Sleep(e.Between(2*time.Second, 4*time.Second)); err != nil {
		return err
	}
	e.Mark()
	if err := loadgen.HugeTransaction(e.Ctx, e.H.SourceURL, 20000, true); err != nil {
		return err
	}
	if err := e.waitLog(e.Capture.LogPath, 40*time.Second, "no space left on device"); err != nil {
		return err
	}
	if err := e.Sleep(e.Between(3*time.Second, 5*time.Second)); err != nil {
		return err
	}
	if err := growTmpfs(spill, "256m"); err != nil {
		return err
	}
	return e.Finish(CheckOptions{})
}
