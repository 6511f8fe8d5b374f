package lwg

import "github.com/lwgkit/lwgkit/hwg"

// Handles spare a receiver the lookup of each data entry's LWG by its id
// (at 10,000 LWGs a map probe and a key comparison that missed the cache:
// 12% of the CPU of BenchmarkPropose there).
//
// A sender numbers the LWGs it sends data to on a carrier from 0 in each
// view of the carrier, and the first entry of an LWG under its number
// carries the id as well (binds the handle). The carrier delivers a
// sender's messages in the view they were sent in, in the order sent, and
// a member that delivers one has delivered every earlier one of that view:
// so a receiver sees each binding before any use of it, and keeps, per
// sender, an array from handle to LWG id and endpoint. At every install
// the numbering starts over, at the sender and the receivers alike (a
// process the install admitted saw none of the earlier bindings).
//
// INVARIANT: a message with handles is sent in the carrier view whose id
// it carries: a Core encodes with handles only while a member of the
// carrier and before it decides to answer Block (what it asks the HWG
// after BlockOK goes in the next view; the data still waiting then is
// flushed, with ids, before the BlockOK). And no binding is lost to a
// refused message: one larger than Config.MaxMessageBytes, which must
// stay under what the HWG takes, goes with ids. Receivers check it: a
// message naming another view is dropped as stale, and a handle bound out
// of order or used unbound makes the message malformed (both counted in
// Stats; the simulator's checkers would see the data lost).

// maxHandle bounds a handle on the wire, far above the LWGs one sender
// can have on one carrier.
const maxHandle = 1<<32 - 1

// handleSlot is what a receiver knows of one handle of one sender.
type handleSlot struct {
	id ID
	ep *endpoint // the local endpoint last found for id, if any
}

// handleItem is one entry of a received tagHandles message.
type handleItem struct {
	h       uint64
	id      []byte // the id it binds h to, or nil
	view    uint64
	payload []byte
}

// handlesOK reports whether n entries for car may go with handles now
// (ids instead once a view's handles would pass maxHandle, until the next
// view).
func (car *carrier) handlesOK(n int) bool {
	room := car.nextHandle+uint64(n) <= maxHandle+1
	return car.member && !car.blockAcked && car.view.ID != 0 && room
}

// assignHandles gives each entry its handle in car's current view,
// binding the LWGs that have none there yet. A handle names an LWG id,
// not an endpoint: an LWG left and joined again in the view keeps its
// handle (receivers' arrays grow with the LWGs sent to, not with churn).
// The endpoint caches it for the carrier record and its count of
// installs, not for a view id: nothing then depends on view ids never
// repeating for a group name.
func (car *carrier) assignHandles(es []dataEntry) {
	for i := range es {
		e := &es[i]
		ep := e.ep
		if ep.hdlCar == car && ep.hdlInstall == car.installs {
			e.h, e.bind = ep.hdl, false
			continue
		}
		if h, ok := car.sentHandles[ep.id]; ok {
			e.h, e.bind = h, false
		} else {
			e.h, e.bind = car.nextHandle, true
			car.nextHandle++
			if car.sentHandles == nil {
				car.sentHandles = map[ID]uint64{}
			}
			car.sentHandles[ep.id] = e.h
		}
		ep.hdl, ep.hdlCar, ep.hdlInstall = e.h, car, car.installs
	}
}

// handlesDelivered hands each entry of a tagHandles message from `from`
// to its local endpoint, if any, after recording the handles it binds.
func (c *Core) handlesDelivered(car *carrier, from hwg.Process, msg []byte) {
	items := c.handleItems[:0]
	defer func() {
		clear(items) // pin no payload
		c.handleItems = items[:0]
	}()
	epoch, err := decodeHandles(msg, func(h uint64, id []byte, view uint64, payload []byte) {
		items = append(items, handleItem{h: h, id: id, view: view, payload: payload})
	})
	if err != nil {
		c.stats.Malformed++
		return
	}
	if epoch != uint64(car.view.ID) {
		c.stats.Stale += uint64(len(items))
		return
	}
	slots := car.received[from]
	n := uint64(len(slots))
	for _, it := range items {
		switch {
		case it.id != nil && it.h == n:
			n++
		case it.id == nil && it.h < n:
		default:
			c.stats.Malformed++
			return
		}
	}
	for _, it := range items {
		if it.id != nil {
			slots = append(slots, handleSlot{id: ID(it.id)})
		}
	}
	if car.received == nil {
		car.received = map[hwg.Process][]handleSlot{}
	}
	car.received[from] = slots
	if !car.synced {
		c.stats.Interference += uint64(len(items))
		return
	}
	for _, it := range items {
		s := &slots[it.h]
		if s.ep == nil || s.ep.ended {
			s.ep = c.eps[s.id]
		}
		if s.ep == nil {
			c.counts.delivered(s.id)
			c.stats.Interference++
			continue
		}
		c.deliverTo(car, from, s.ep, it.view, it.payload)
	}
}
