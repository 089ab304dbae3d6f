//go:build linux

package run

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// eventMask is what the watcher asks fanotify for: opens, executions and
// reads of files.
const eventMask = unix.FAN_OPEN | unix.FAN_ACCESS | unix.FAN_OPEN_EXEC

// metadataSize is sizeof(struct fanotify_event_metadata).
const metadataSize = 24

// watcher records, from a fanotify group marked on the overlay's
// filesystem, the regular files of the image in the order they are first
// accessed.
type watcher struct {
	fd       int
	lower    *os.Root // the image's root filesystem, to tell image files apart
	prefixes []string // mount paths that event paths may start with
	max      int

	stop    chan struct{}
	done    chan struct{}
	running bool

	mu        sync.Mutex
	files     []string
	seen      map[string]bool
	execs     []string // files reported with FAN_OPEN_EXEC, in order
	full      bool
	overflow  bool
	ignoreErr error
	err       error
}

func newWatcher(lower *os.Root, max int, prefixes ...string) (*watcher, error) {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK|unix.FAN_UNLIMITED_QUEUE,
		unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("%w: fanotify_init: %v", ErrUnsupported, err)
	}
	return &watcher{
		fd:       fd,
		lower:    lower,
		prefixes: prefixes,
		max:      max,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		seen:     map[string]bool{},
	}, nil
}

// mark watches the whole filesystem that p is on. A filesystem mark, unlike
// a mount mark, also sees the copies of the mount in other mount namespaces.
func (w *watcher) mark(p string) error {
	if err := unix.FanotifyMark(w.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, eventMask, unix.AT_FDCWD, p); err != nil {
		return fmt.Errorf("%w: fanotify_mark on the overlay: %v", ErrUnsupported, err)
	}
	return nil
}

// start reads events until finish is called.
func (w *watcher) start() {
	w.running = true
	go w.loop()
}

// started reports whether start was called.
func (w *watcher) started() bool { return w.running }

// finish reads the events still queued and stops; it returns what the loop
// failed on, if anything.
func (w *watcher) finish() error {
	close(w.stop)
	<-w.done
	return w.err
}

// close releases the fanotify group (and with it every mark).
func (w *watcher) close() {
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
}

func (w *watcher) loop() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	pfd := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	for {
		stopping := false
		select {
		case <-w.stop:
			stopping = true
		default:
			if _, err := unix.Poll(pfd, 100); err != nil && !errors.Is(err, unix.EINTR) {
				w.err = fmt.Errorf("reading file events: %w", err)
				return
			}
		}
		for {
			n, err := unix.Read(w.fd, buf)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.EAGAIN) {
				break
			}
			if err != nil {
				w.err = fmt.Errorf("reading file events: %w", err)
				return
			}
			if err := w.handle(buf[:n]); err != nil {
				w.err = err
				return
			}
		}
		if stopping {
			return
		}
	}
}

// handle decodes a buffer of events; it closes every event's descriptor.
func (w *watcher) handle(b []byte) error {
	var bad error
	for len(b) >= metadataSize {
		evLen := int(binary.NativeEndian.Uint32(b[0:4]))
		vers := b[4]
		mask := binary.NativeEndian.Uint64(b[8:16])
		fd := int(int32(binary.NativeEndian.Uint32(b[16:20])))
		if evLen < metadataSize || evLen > len(b) {
			return fmt.Errorf("reading file events: malformed event of %d bytes", evLen)
		}
		b = b[evLen:]
		if vers != unix.FANOTIFY_METADATA_VERSION {
			if fd >= 0 {
				unix.Close(fd)
			}
			bad = fmt.Errorf("reading file events: fanotify metadata version %d, want %d", vers, unix.FANOTIFY_METADATA_VERSION)
			continue
		}
		if mask&unix.FAN_Q_OVERFLOW != 0 {
			w.mu.Lock()
			w.overflow = true
			w.mu.Unlock()
		}
		if fd < 0 {
			continue
		}
		w.event(fd, mask)
		unix.Close(fd)
	}
	return bad
}

// event records the file that fd (opened by the kernel for the event) is,
// if it is a regular file of the image seen for the first time, and tells
// the kernel to stop reporting that file.
func (w *watcher) event(fd int, mask uint64) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return
	}
	target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return
	}
	p := w.imagePath(target)
	w.mu.Lock()
	defer w.mu.Unlock()
	if p != "" && mask&unix.FAN_OPEN_EXEC != 0 && !w.seen[p] {
		w.execs = append(w.execs, p)
	}
	if p != "" && !w.seen[p] && w.isImageFile(p) {
		w.seen[p] = true
		if len(w.files) < w.max {
			w.files = append(w.files, p)
		} else {
			w.full = true
		}
	}
	// One event per file is all the profile needs: ignore the inode from
	// now on (also after it is modified).
	if err := unix.FanotifyMark(w.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_IGNORED_MASK|unix.FAN_MARK_IGNORED_SURV_MODIFY,
		eventMask, fd, ""); err != nil && w.ignoreErr == nil {
		w.ignoreErr = err
	}
}

// imagePath turns the path of an event's descriptor into a path inside the
// image: the kernel names the file from the sandbox's root ("/usr/bin/sh"),
// or, for a file opened before the sandbox pivoted into the overlay, from
// the host's root (WORKSPACE/merged/usr/bin/sh).
func (w *watcher) imagePath(p string) string {
	p = strings.TrimSuffix(p, " (deleted)")
	for _, pre := range w.prefixes {
		if rest, ok := strings.CutPrefix(p, pre); ok && (rest == "" || rest[0] == '/') {
			p = rest
			break
		}
	}
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return ""
	}
	return p
}

// isImageFile reports whether p is a regular file of the image (and not one
// the process created).
func (w *watcher) isImageFile(p string) bool {
	fi, err := w.lower.Lstat(strings.TrimPrefix(p, "/"))
	return err == nil && fi.Mode().IsRegular()
}

// result returns the files recorded and the warnings about the recording.
func (w *watcher) result() (files, execs []string, warnings []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.overflow {
		warnings = append(warnings, "the kernel dropped file events: the profile may miss files")
	}
	if w.full {
		warnings = append(warnings, fmt.Sprintf("file cap of %d reached: the profile is truncated (see WithMaxFiles)", w.max))
	}
	return append([]string(nil), w.files...), append([]string(nil), w.execs...), warnings
}
