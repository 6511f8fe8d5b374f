package lwg

import (
	"slices"

	"github.com/lwgkit/lwgkit/hwg"
)

// advance moves every request in progress as far as the local state allows:
// joins and leaves through the directory and their carrier, switches, and
// the acknowledgements and announcements a switch waits on. It runs after
// every input; joins and leaves are looked at again only after an input
// that can change what they wait on (c.stale: not a data delivery), so a
// burst of n joins costs O(n) per protocol step, not per message.
// Everything it sends is guarded by an in-flight flag that the request's
// own delivery clears, so it never sends twice what is in flight.
func (c *Core) advance() {
	if !c.dir.synced {
		return
	}
	if c.stale {
		c.stale = false
		c.touched = c.touched[:0]
		clear(c.waiting)
		clear(c.sentOn)
		live := c.order[:0]
		for _, l := range c.order {
			if in := c.intents[l]; in != nil {
				in.listed = false
			}
			c.advanceIntent(l)
			if in := c.intents[l]; in != nil {
				live = append(live, l)
				c.noteSent(l, in.joinOn)
				c.noteSent(l, in.leaveOn)
			} else {
				delete(c.inOrder, l)
			}
		}
		clear(c.order[len(live):])
		c.order = live
	}
	// advanceWaiting touches nothing: the list does not grow under the
	// loop.
	for _, h := range c.touched {
		c.advanceWaiting(h)
		c.advanceWaiting("")
	}
	clear(c.touched)
	c.touched = c.touched[:0]
	for _, l := range sortedKeys(c.switches) {
		c.advanceSwitch(l, c.switches[l])
	}
	for _, l := range sortedKeys(c.pendingEP) {
		delete(c.pendingEP, l)
		ep := c.eps[l]
		switch {
		case ep == nil:
		case ep.awaitAdopt:
			c.pendingEP[l] = true // until the install
			c.advanceAdopt(ep)
		case ep.held:
			c.sendFlushOK(ep) // marks it pending again if it must wait
		}
	}
}

// advanceWaiting moves on the intents listed as waiting on h's events.
// An entry whose intent ended, or now waits on another group (listed
// there), is dropped.
func (c *Core) advanceWaiting(h hwg.GroupID) {
	ls := c.waiting[h]
	if len(ls) == 0 {
		return
	}
	delete(c.waiting, h)
	c.passes++
	for _, l := range ls {
		if in := c.intents[l]; in != nil && in.listed && in.waitOn == h && in.pass != c.passes {
			in.listed, in.pass = false, c.passes
			c.advanceIntent(l)
		}
	}
}

// advanceIntent moves l's Join or Leave on, and lists it under the group
// whose events can move it on next.
func (c *Core) advanceIntent(l ID) {
	in := c.intents[l]
	c.intentVisits++
	var on hwg.GroupID
	switch {
	case in == nil || !c.dir.synced:
		return
	case !in.leave && in.joinOn != "":
		// In flight: its own delivery, or the install, moves it on.
		if car := c.carriers[in.joinOn]; car != nil {
			c.pin(car)
		}
		on = in.joinOn
	case !in.leave && in.bindSent:
		// Its bind's delivery moves it on.
		on = c.cfg.Directory
	case in.leave:
		on = c.advanceLeave(l, in)
	default:
		on = c.advanceJoin(l, in)
	}
	if c.intents[l] == in {
		c.listIntent(l, in, on)
	}
}

// listIntent lists l's intent in under on, unless it is listed there.
func (c *Core) listIntent(l ID, in *intent, on hwg.GroupID) {
	if !in.listed || in.waitOn != on {
		in.waitOn, in.listed = on, true
		c.waiting[on] = append(c.waiting[on], l)
	}
}

// noteSent lists l under carrier h, where its request is in flight (none
// if h is "").
func (c *Core) noteSent(l ID, h hwg.GroupID) {
	if h != "" {
		c.sentOn[h] = append(c.sentOn[h], l)
	}
}

// addIntent records a new Join or Leave for l, in request order.
func (c *Core) addIntent(l ID, in *intent) {
	c.intents[l] = in
	if !c.inOrder[l] {
		c.inOrder[l] = true
		c.order = append(c.order, l)
	}
}

// advanceJoin moves l's Join on and returns the group whose events can
// move it on next ("" if any carrier's may).
func (c *Core) advanceJoin(l ID, in *intent) hwg.GroupID {
	if c.eps[l] != nil {
		delete(c.intents, l)
		return ""
	}
	b, ok := c.dir.lwgs[l]
	if !ok || !c.dir.alive(b.HWG) {
		// Unbound, or its carrier died with every member: bind it (again);
		// a bind names the version it replaces, so one of many wins.
		if !in.bindSent {
			c.ctl(c.cfg.Directory, kBind, item{LWG: l, Ver: b.Ver, Group: c.cfg.Place(l)})
			in.bindSent = true
		}
		return c.cfg.Directory
	}
	h := b.HWG
	// Follow moves the local directory copy has not caught up with. A
	// join that followed one carries the move's last view and members: it
	// continues the LWG's view ids, and does not start the LWG afresh while
	// a member that moved may still announce it.
	var moved gone
	for range 8 {
		car := c.carriers[h]
		if moved.To != "" && !c.dir.alive(h) {
			// It moved to a carrier that died: it has no member left.
			if !in.bindSent {
				c.ctl(c.cfg.Directory, kBind, item{LWG: l, Ver: b.Ver, Group: c.cfg.Place(l), From: h})
				in.bindSent = true
			}
			return c.cfg.Directory
		}
		if car == nil || !car.synced || car.leaving {
			// Its registration moves on with the directory's events, its
			// join and table with h's (after the leave under way, if any).
			c.needCarrier(h)
			return h
		}
		g, ok := car.gone[l]
		if !ok || g.To == "" {
			break
		}
		h, moved = g.To, g
	}
	car := c.carriers[h]
	c.pin(car)
	e := car.entries[l]
	if e != nil && e.Fl != nil && e.Fl.To != "" {
		return "" // switching: join on the new carrier
	}
	if e == nil && mayAnnounce(moved.Members, c.self, car.view) {
		return h // wait for the announcement
	}
	if in.joinOn == "" {
		it := item{LWG: l, Ver: b.Ver}
		if moved.To != "" {
			it.View, it.Members = moved.View+1, moved.Members
		}
		c.ctl(h, kJoin, it)
		in.joinOn = h
		c.noteSent(l, h)
	}
	return h
}

// advanceLeave moves l's Leave on and returns the group whose events can
// move it on next ("" if any carrier's may).
func (c *Core) advanceLeave(l ID, in *intent) hwg.GroupID {
	ep := c.eps[l]
	if ep == nil {
		if in.joinOn == "" {
			delete(c.intents, l)
		}
		return in.joinOn // a join still in flight completes first, then leaves
	}
	if ep.awaitAdopt {
		return ""
	}
	if e := c.carriers[ep.h].entries[l]; e != nil && e.Fl != nil && e.Fl.To != "" {
		return ""
	}
	if in.leaveOn == "" {
		c.ctl(ep.h, kLeave, item{LWG: l})
		in.leaveOn = ep.h
		c.noteSent(l, ep.h)
	}
	return ep.h
}

func (c *Core) advanceSwitch(l ID, sw *switchReq) {
	ep := c.eps[l]
	if ep == nil {
		delete(c.switches, l)
		return
	}
	if ep.awaitAdopt {
		return
	}
	h, ok := c.dir.bases[sw.base]
	if !ok {
		if !sw.bound {
			c.ctl(c.cfg.Directory, kBind, item{Group: sw.base})
			sw.bound = true
		}
		return
	}
	if h == ep.h {
		c.endSwitch(l, nil) // there already
		return
	}
	c.needCarrier(h)
	e := c.carriers[ep.h].entries[l]
	if e == nil || e.Fl != nil || sw.sent {
		return // wait for the flush in progress (perhaps the switch) to end
	}
	if sw.started != 0 && sw.started != e.View.ID {
		sw.started = 0 // a carrier view change interrupted it: try again
	}
	if sw.started == 0 {
		c.ctl(ep.h, kSwitch, item{LWG: l, View: e.View.ID, Group: h})
		sw.sent = true
	}
}

// advanceAdopt announces a switched LWG on its new carrier. The announcer
// is the first member of the LWG's last view that is in the carrier's
// current view, so a crash of the coordinator after the switch point hands
// the duty on at the carrier's next view. A member that is out of the
// carrier (it left or was excluded after it acknowledged the switch) joins
// it again; if the LWG was announced meanwhile without it, or the carrier
// died, its endpoint ends.
func (c *Core) advanceAdopt(ep *endpoint) {
	t := c.carriers[ep.h]
	c.pin(t)
	if !t.synced {
		if c.dir.synced && !c.dir.alive(ep.h) {
			c.endEndpoint(t, ep, false)
			return
		}
		c.needCarrier(ep.h)
		return
	}
	// An announcement that counts this node reaches it as an install,
	// which ends awaitAdopt (adopt counts only members that hold the
	// table). One it holds in the table without having had it came with
	// the snapshot: it was made while this node was out.
	if e := t.entries[ep.id]; e != nil {
		if e.View.Contains(c.self) {
			c.installLocal(t, ep, Event{Type: EventInstall, LWG: ep.id, View: e.View.Clone(), HWG: t.group, HWGView: t.view.ID})
		} else {
			c.endEndpoint(t, ep, false)
		}
		return
	}
	if g, ok := t.gone[ep.id]; ok && g.View > ep.view.ID {
		c.endEndpoint(t, ep, false) // announced, then ended or moved on
		return
	}
	if ep.adoptSent {
		return
	}
	for _, m := range ep.view.Members {
		if t.view.Contains(m) {
			if m == c.self {
				c.send(ep.h, &control{Kind: kAdopt, Items: []item{{LWG: ep.id, View: ep.view.ID + 1, Members: slices.Clone(ep.view.Members)}}})
				ep.adoptSent = true
			}
			return
		}
	}
}

// needCarrier makes this node a member of carrier h: register in the
// directory, then join through the registered members (or bootstrap it, if
// the directory made this process its creator).
func (c *Core) needCarrier(h hwg.GroupID) {
	car := c.carrierOf(h)
	c.pin(car)
	if car.member || car.joining || car.unregSent {
		return
	}
	rec := c.dir.carriers[h]
	if rec == nil {
		return
	}
	car.leaving = false // a leave hwg did not take (it reports nothing) must not hold joins back
	if rec.Creator == c.self && !c.booted[h] {
		c.booted[h] = true
		car.joining, car.joinTicks = true, 0
		c.act(Action{Type: ActBootstrap, Group: h, Members: []hwg.Process{c.self}})
		return
	}
	if !rec.registered(c.self) {
		if !car.regSent {
			c.ctl(c.cfg.Directory, kReg, item{Group: h})
			car.regSent = true
		}
		return
	}
	car.joining, car.joinTicks = true, 0
	c.act(Action{Type: ActJoin, Group: h, Contacts: nodesOf(rec.Regs, c.self.Node)})
}

// pin marks car as needed now, which postpones its lazy leave.
func (c *Core) pin(car *carrier) { car.pinned = c.ticks }
