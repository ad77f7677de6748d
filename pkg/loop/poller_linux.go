package loop

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// poller is one epoll instance plus an eventfd to wake it for shutdown.
type poller struct {
	epfd   int
	wakefd int
}

const connEvents = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("loop: epoll_create1: %w", err)
	}
	wfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("loop: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wfd)
		return nil, fmt.Errorf("loop: epoll_ctl wake fd: %w", err)
	}
	return &poller{epfd: epfd, wakefd: wfd}, nil
}

// add watches fd edge-triggered for input and output. EPOLLOUT is armed once
// for the connection's life: with EPOLLET it only fires after a write hit
// EAGAIN and space came back, so no epoll_ctl is needed per slow write.
func (p *poller) add(fd int) error {
	ev := unix.EpollEvent{Events: connEvents, Fd: int32(fd)}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
}

func (p *poller) remove(fd int) {
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

func (p *poller) wake() {
	var one = [8]byte{1}
	_, _ = unix.Write(p.wakefd, one[:])
}

// run waits for events until closed. One reused 1024-event buffer.
func (p *poller) run(l *Loop) {
	events := make([]unix.EpollEvent, 1024)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			l.log.Error("epoll_wait failed", "err", err)
			return
		}
		for i := 0; i < n; i++ {
			ev := &events[i]
			fd := int(ev.Fd)
			if fd == p.wakefd {
				if l.closed.Load() {
					return
				}
				var buf [8]byte
				_, _ = unix.Read(p.wakefd, buf[:])
				continue
			}
			c := l.conns.get(fd)
			if c == nil {
				continue
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				c.triggerRead()
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				c.writable()
			}
		}
	}
}

func (p *poller) close() {
	unix.Close(p.epfd)
	unix.Close(p.wakefd)
}
