package report

import "math"

// The simulator runs a plan of requests and CPU work on a network, as a
// fluid model: every request waits one RTT, then its bytes flow at an equal
// share of the bandwidth with every other request transferring at that
// moment (processor sharing, what a bottleneck link gives several TCP
// connections), after the registry's own time per request
// (Rates.Request); CPU work attached to a request overlaps its transfer (the
// client decompresses as bytes arrive), so the request ends at the later of
// its last byte and RTT + CPU. Pure CPU tasks last their CPU time. Tasks
// start when their dependencies are done and, for pooled tasks, when a slot
// of the pool is free, in plan order. The result depends only on the plan
// and the network: the arithmetic is done in a fixed order.

// phase attributes a task's time to a bar segment.
type phase uint8

const (
	phaseDownload phase = iota
	phaseUnpack
	phaseOnDemand
)

// task is one request or piece of CPU work.
type task struct {
	deps []int
	// anyOf, when set, also holds the task until one of these is done
	// (a wait with a timeout).
	anyOf []int
	// pool is the index of the pool the task takes a slot of, -1 for none.
	pool int
	// request is set for network requests (they pay an RTT).
	request bool
	bytes   float64
	cpu     float64
	phase   phase
	// background tasks share the network but gate nothing: the start is
	// over when every other task is (a snapshotter's background fetch).
	background bool
}

// plan is a set of tasks and pools.
type plan struct {
	tasks []task
	pools []int // capacities
	// overhead is the registry's time per request, added to the RTT.
	overhead float64
}

func (p *plan) add(t task) int {
	p.tasks = append(p.tasks, t)
	return len(p.tasks) - 1
}

func (p *plan) request(bytes, cpu float64, ph phase, deps ...int) int {
	return p.add(task{deps: deps, pool: -1, request: true, bytes: bytes, cpu: cpu, phase: ph})
}

// backgroundRequest adds a request that shares the network with the start
// but does not hold it up.
func (p *plan) backgroundRequest(bytes float64, ph phase, deps ...int) int {
	return p.add(task{deps: deps, pool: -1, request: true, bytes: bytes, phase: ph, background: true})
}

func (p *plan) work(cpu float64, ph phase, deps ...int) int {
	return p.add(task{deps: deps, pool: -1, cpu: cpu, phase: ph})
}

// waitAny adds a task that ends when deps are done and one of anyOf is.
func (p *plan) waitAny(ph phase, deps, anyOf []int) int {
	return p.add(task{deps: deps, anyOf: anyOf, pool: -1, phase: ph})
}

// timer adds a task that lasts d seconds after deps and, unlike work,
// does not count in the total: a timeout that a waitAny may end on.
func (p *plan) timer(d float64, ph phase, deps ...int) int {
	return p.add(task{deps: deps, pool: -1, cpu: d, phase: ph, background: true})
}

// pool adds a pool of n slots and returns its index.
func (p *plan) pool(n int) int {
	p.pools = append(p.pools, n)
	return len(p.pools) - 1
}

// task states.
const (
	stPending = iota
	stLatency
	stTransfer
	stCPU
	stDone
)

// timing is the simulated schedule of a plan.
type timing struct {
	start, end []float64
	// background marks the tasks that do not count in the total (they may
	// not have ended).
	background []bool
}

// simEpsilon absorbs rounding in the event times, in seconds and bytes.
const simEpsilon = 1e-9

// simulate returns when every task starts and ends, in seconds from 0.
func simulate(p *plan, n Network) timing {
	nt := len(p.tasks)
	tm := timing{start: make([]float64, nt), end: make([]float64, nt), background: make([]bool, nt)}
	for i := range p.tasks {
		tm.background[i] = p.tasks[i].background
	}
	state := make([]int, nt)
	until := make([]float64, nt)  // end of latency or of CPU
	latEnd := make([]float64, nt) // when the response started
	remaining := make([]float64, nt)
	inUse := make([]int, len(p.pools))
	rtt := n.RTT.Seconds() + p.overhead
	rate := n.BytesPerSecond
	unlimited := rate <= 0
	now := 0.0
	done := 0
	foreground := 0
	for i := range p.tasks {
		if !p.tasks[i].background {
			foreground++
		}
	}
	fgDone := 0

	finish := func(i int) {
		state[i] = stDone
		tm.end[i] = now
		done++
		if !p.tasks[i].background {
			fgDone++
		}
		if t := &p.tasks[i]; t.pool >= 0 {
			inUse[t.pool]--
		}
	}
	// afterTransfer moves a task whose bytes are all in to CPU or done.
	afterTransfer := func(i int) {
		if c := latEnd[i] + p.tasks[i].cpu; c > now+simEpsilon {
			state[i], until[i] = stCPU, c
			return
		}
		finish(i)
	}
	// afterLatency moves a task whose RTT is over to transfer.
	afterLatency := func(i int) {
		latEnd[i] = now
		if remaining[i] > simEpsilon && !unlimited {
			state[i] = stTransfer
			return
		}
		afterTransfer(i)
	}
	for done < nt && fgDone < foreground {
		// Start what can start, until nothing changes at this instant.
		for changed := true; changed; {
			changed = false
			for i := range p.tasks {
				if state[i] != stPending {
					continue
				}
				t := &p.tasks[i]
				ready := true
				for _, d := range t.deps {
					if state[d] != stDone {
						ready = false
						break
					}
				}
				if ready && len(t.anyOf) > 0 {
					ready = false
					for _, d := range t.anyOf {
						if state[d] == stDone {
							ready = true
							break
						}
					}
				}
				if !ready || t.pool >= 0 && inUse[t.pool] >= p.pools[t.pool] {
					continue
				}
				changed = true
				if t.pool >= 0 {
					inUse[t.pool]++
				}
				tm.start[i] = now
				remaining[i] = t.bytes
				if t.request && rtt > 0 {
					state[i], until[i] = stLatency, now+rtt
					continue
				}
				afterLatency(i)
			}
		}
		if done == nt || fgDone == foreground {
			break
		}
		// The next event.
		active := 0
		for i := range p.tasks {
			if state[i] == stTransfer {
				active++
			}
		}
		next := math.Inf(1)
		share := 0.0
		if active > 0 {
			share = rate / float64(active)
		}
		for i := range p.tasks {
			switch state[i] {
			case stLatency, stCPU:
				next = math.Min(next, until[i])
			case stTransfer:
				next = math.Min(next, now+remaining[i]/share)
			}
		}
		if math.IsInf(next, 1) {
			// A dependency cycle or a pool of zero slots: cannot happen for
			// the plans this package builds.
			panic("report: simulation stalled")
		}
		dt := next - now
		now = next
		for i := range p.tasks {
			switch state[i] {
			case stTransfer:
				remaining[i] -= dt * share
				if remaining[i] <= simEpsilon*share+simEpsilon {
					remaining[i] = 0
					afterTransfer(i)
				}
			case stLatency:
				if until[i] <= now+simEpsilon {
					afterLatency(i)
				}
			case stCPU:
				if until[i] <= now+simEpsilon {
					finish(i)
				}
			}
		}
	}
	return tm
}

// total is when the last task ends.
func (tm timing) total() float64 {
	t := 0.0
	for i, e := range tm.end {
		if !tm.background[i] {
			t = math.Max(t, e)
		}
	}
	return t
}
