package chaos

import (
	"syscall"
	"time"
)

func init() {
	register(
		Scenario{
			Name:    "baseline",
			Injects: "nothing: the pipeline under load, checked like every other scenario (the detectors must stay quiet)",
			Checks:  "I1-I6",
			Run: func(e *Env) error {
				if err := e.Boot(Setup{}); err != nil {
					return err
				}
				e.StartLoad(8*time.Second, 0)
				return e.Finish(CheckOptions{})
			},
		},
		Scenario{
			Name:    "capture-kill9",
			Injects: "kill -9 of capture at a seeded instant under load, restarted 1-3 s later",
			Checks:  "I1-I6",
			Short:   true,
			Run: func(e *Env) error {
				if err := e.Boot(Setup{}); err != nil {
					return err
				}
				e.StartLoad(12*time.Second, 0)
				for range 2 {
					if err := e.Sleep(e.Between(2*time.Second, 5*time.Second)); err != nil {
						return err
					}
					e.Mark()
					e.Capture.Kill()
					if err := e.Sleep(e.Between(time.Second, 3*time.Second)); err != nil {
						return err
					}
					if _, err := e.StartCapture(); err != nil {
						return err
					}
				}
				return e.Finish(CheckOptions{})
			},
		},
		Scenario{
			Name:    "capture-sigstop",
			Injects: "SIGSTOP of capture for 4-8 s under load, then SIGCONT",
			Checks:  "I1-I6",
			Run: func(e *Env) error {
				if err := e.Boot(Setup{}); err != nil {
					return err
				}
				e.StartLoad(14*time.Second, 0)
				if err := e.Sleep(e.Between(2*time.Second, 4*time.Second)); err != nil {
					return err
				}
				e.Mark()
				if err := e.Capture.Signal(syscall.SIGSTOP); err != nil {
					return err
				}
				err := e.Sleep(e.Between(4*time.Second, 8*time.Second))
				if cerr := e.Capture.Signal(syscall.SIGCONT); cerr != nil {
					return cerr
				}
				if err != nil {
					return err
				}
				return e.Finish(CheckOptions{})
			},
		},
	)
}
