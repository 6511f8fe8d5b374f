package lwg

import (
	"context"
	"slices"

	"github.com/lwgkit/lwgkit/hwg"
)

// Observation is a copy of what one node's LWG layer knows about placement:
// the LWGs in the tables of the carriers it is in, every live carrier of
// the directory, and per-LWG traffic counters. Placement policies (package
// switching) read it; it shares no memory with the Core.
//
// A node sees the full view of every LWG it is a member of (it is in that
// LWG's carrier) and of every other LWG on those carriers; of the other
// carriers it knows only what the directory says (base and registered
// members).
type Observation struct {
	Self hwg.Process
	// Ticks is the number of Core ticks so far.
	Ticks uint64
	// Synced reports whether this node holds the directory. Until it does,
	// Carriers is empty.
	Synced bool
	// LWGs are the LWGs of the tables of the carriers this node holds,
	// sorted by ID, one entry per LWG.
	LWGs []LWGObservation
	// Carriers are the live carriers of the directory, sorted by ID.
	Carriers []CarrierObservation
	// Stats are the Core's counters.
	Stats Stats
}

// LWGObservation is one LWG as a node sees it.
type LWGObservation struct {
	ID ID
	// View is its current view in the table of HWG; for an LWG this node
	// is a member of, the view this node installed last.
	View View
	// HWG is the carrier whose table holds it (for a local LWG, the carrier
	// its endpoint is on).
	HWG hwg.GroupID
	// Bound is the carrier the directory binds it to ("" if unbound). It
	// differs from HWG for a while after a switch.
	Bound hwg.GroupID
	// Local reports whether this node has an endpoint in it.
	Local bool
	// Busy reports that it is changing: a flush (join, leave or switch) is
	// in progress in its table, this node asked to switch it, or it is
	// between carriers. A policy should leave it alone until it settles.
	Busy bool
	// Traffic counts the data messages of this LWG that carriers delivered
	// at this node since the Core started, whether to a local endpoint or
	// dropped for want of one (interference): every member of a carrier
	// receives every data message on it, so any member sees the LWG's
	// whole traffic.
	Traffic uint64
	// Sent counts the multicasts this node sent in it.
	Sent uint64
}

// CarrierObservation is one live carrier, as the directory knows it and, if
// this node is a member, as its current view says.
type CarrierObservation struct {
	ID hwg.GroupID
	// Base is the placement base it was created for.
	Base hwg.GroupID
	// Current reports whether it is its base's carrier in the directory:
	// Switch(l, Base) goes to it. An older carrier of the same base that is
	// still alive is not.
	Current bool
	// Regs are its registered members, per the directory, sorted.
	Regs []hwg.Process
	// Member reports whether this node is in it and holds its table; View
	// and LWGs are known only then.
	Member bool
	View   hwg.View
	// LWGs is the number of LWGs in its table.
	LWGs int
}

// Observe returns what the Core knows about placement. It changes nothing.
func (c *Core) Observe() Observation {
	o := Observation{Self: c.self, Ticks: c.ticks, Synced: c.dir.synced, Stats: c.stats}
	byID := map[ID]int{}
	add := func(lo LWGObservation) {
		if i, ok := byID[lo.ID]; ok {
			// In two tables at once: announced on its new carrier before
			// this node saw the switch point on the old one.
			o.LWGs[i].Busy = true
			if lo.Local {
				lo.Busy = true
				o.LWGs[i] = lo
			}
			return
		}
		byID[lo.ID] = len(o.LWGs)
		o.LWGs = append(o.LWGs, lo)
	}
	for _, car := range c.sortedCarriers() {
		h := car.group
		if !car.member || !car.synced {
			continue
		}
		for _, l := range sortedKeys(car.entries) {
			e := car.entries[l]
			lo := LWGObservation{ID: l, View: e.View.Clone(), HWG: h, Busy: e.Fl != nil}
			if ep := c.eps[l]; ep != nil {
				if ep.h != h {
					lo.Busy = true // arriving here, or already gone
				} else {
					lo.Local = true
					lo.Busy = lo.Busy || ep.awaitAdopt || ep.incoming != "" || c.switches[l] != nil
				}
			}
			add(lo)
		}
	}
	for _, l := range sortedKeys(c.eps) {
		if _, ok := byID[l]; !ok {
			ep := c.eps[l]
			add(LWGObservation{ID: l, View: ep.view.Clone(), HWG: ep.h, Local: true, Busy: true})
		}
	}
	slices.SortFunc(o.LWGs, func(a, b LWGObservation) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	for i := range o.LWGs {
		lo := &o.LWGs[i]
		lo.Bound = c.dir.lwgs[lo.ID].HWG
		lo.Traffic = c.counts.traffic[lo.ID]
		lo.Sent = c.counts.sent[lo.ID]
		if ep := c.eps[lo.ID]; ep != nil {
			lo.Traffic += ep.traffic
			lo.Sent += ep.sent
		}
	}
	if !c.dir.synced {
		return o
	}
	for _, h := range sortedKeys(c.dir.carriers) {
		rec := c.dir.carriers[h]
		co := CarrierObservation{ID: h, Base: rec.Base, Current: c.dir.bases[rec.Base] == h, Regs: slices.Clone(rec.Regs)}
		if car := c.carriers[h]; car != nil && car.member && car.synced {
			co.Member, co.View, co.LWGs = true, car.view.Clone(), len(car.entries)
		}
		o.Carriers = append(o.Carriers, co)
	}
	return o
}

// counters are the per-LWG traffic counters Observe reports. A local
// endpoint counts its own (endpoint.traffic, sent), added here when it
// ends; the maps grow with the LWGs that carried traffic at this node
// without an endpoint, or had one that ended (an entry per LWG, never
// removed while the Core lives); idle LWGs have none.
type counters struct {
	traffic map[ID]uint64 // data messages delivered by a carrier, endpoint or not
	sent    map[ID]uint64 // multicasts sent by this node
}

func (k *counters) delivered(l ID) {
	if k.traffic == nil {
		k.traffic = map[ID]uint64{}
	}
	k.traffic[l]++
}

// add keeps the counts of an endpoint that ends.
func (k *counters) add(ep *endpoint) {
	if ep.traffic > 0 {
		if k.traffic == nil {
			k.traffic = map[ID]uint64{}
		}
		k.traffic[ep.id] += ep.traffic
	}
	if ep.sent > 0 {
		if k.sent == nil {
			k.sent = map[ID]uint64{}
		}
		k.sent[ep.id] += ep.sent
	}
	ep.traffic, ep.sent = 0, 0
}

// Observe returns what this node's LWG layer knows about placement (see
// Core.Observe). It runs on the Service's loop, like every request.
func (s *Service) Observe(ctx context.Context) (Observation, error) {
	var o Observation
	err := s.do(ctx, func(ch chan error) error {
		o = s.core.Observe()
		now(ch)
		return nil
	})
	return o, err
}
