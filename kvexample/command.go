package kvexample

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Op is the operation of a Command.
type Op uint8

// The operations of the KV state machine. Writes (Set, Del, IncrBy) are
// proposed; reads (Get, Exists, MGet) are queries.
const (
	OpGet Op = iota + 1
	OpSet
	OpDel
	OpExists
	OpIncrBy
	OpMGet
	opEnd // first invalid op
)

var opNames = [...]string{"", "get", "set", "del", "exists", "incrby", "mget"}

func (o Op) String() string {
	if o > 0 && o < opEnd {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// IsRead reports whether the operation leaves the state unchanged (it is
// answered by a query, not proposed).
func (o Op) IsRead() bool { return o == OpGet || o == OpExists || o == OpMGet }

// Set flags.
const (
	SetNX       uint8 = 1 << iota // only if the key does not exist
	SetXX                         // only if the key exists
	setFlagsAll = SetNX | SetXX
)

// Limits of the command encoding. They bound what a decoder allocates, not
// what a server accepts (Config.MaxValueBytes does that).
const (
	// MaxArgs is the most keys (or arguments) one command carries.
	MaxArgs = 1 << 16
)

// ErrMalformed: bytes that are not a valid encoded command, result or
// snapshot.
var ErrMalformed = errors.New("kvexample: malformed encoding")

// Command is one operation on one shard. Args are the keys, except for
// OpSet where Args is [key, value].
//
// Encoding (all integers are canonical varints, lengths unsigned):
//
//	op byte
//	flags byte            OpSet only
//	delta zigzag varint   OpIncrBy only
//	n uvarint, then n times: length uvarint, bytes
//
// The encoding is canonical: DecodeCommand accepts exactly the bytes
// EncodeCommand produces, so equal commands have equal encodings.
type Command struct {
	Op    Op
	Flags uint8 // OpSet: SetNX or SetXX
	Delta int64 // OpIncrBy
	Args  [][]byte
}

// arity returns the allowed number of Args for op: min, and max (-1: no max).
func arity(op Op) (int, int) {
	switch op {
	case OpGet, OpIncrBy:
		return 1, 1
	case OpSet:
		return 2, 2
	case OpDel, OpExists, OpMGet:
		return 1, MaxArgs
	}
	return 0, -1
}

// Validate checks the command's shape: a known op, the right number of
// arguments, and flags only where they belong.
func (c Command) Validate() error {
	if c.Op == 0 || c.Op >= opEnd {
		return fmt.Errorf("%w: unknown op %d", ErrMalformed, c.Op)
	}
	lo, hi := arity(c.Op)
	if len(c.Args) < lo || len(c.Args) > hi {
		return fmt.Errorf("%w: %s takes %d to %d arguments, got %d", ErrMalformed, c.Op, lo, hi, len(c.Args))
	}
	if c.Op != OpSet && c.Flags != 0 {
		return fmt.Errorf("%w: flags on %s", ErrMalformed, c.Op)
	}
	if c.Flags&^setFlagsAll != 0 || c.Flags == setFlagsAll {
		return fmt.Errorf("%w: bad set flags %#x", ErrMalformed, c.Flags)
	}
	if c.Op != OpIncrBy && c.Delta != 0 {
		return fmt.Errorf("%w: delta on %s", ErrMalformed, c.Op)
	}
	return nil
}

// EncodeCommand returns the command's encoding. It fails only if the
// command is invalid (Validate).
func EncodeCommand(c Command) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	size := 2 + binary.MaxVarintLen64*2
	for _, a := range c.Args {
		size += binary.MaxVarintLen64 + len(a)
	}
	b := make([]byte, 0, size)
	b = append(b, byte(c.Op))
	switch c.Op {
	case OpSet:
		b = append(b, c.Flags)
	case OpIncrBy:
		b = binary.AppendVarint(b, c.Delta)
	}
	b = binary.AppendUvarint(b, uint64(len(c.Args)))
	for _, a := range c.Args {
		b = binary.AppendUvarint(b, uint64(len(a)))
		b = append(b, a...)
	}
	return b, nil
}

// decoder reads canonical varints and length-prefixed byte strings.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	if n != uvarintLen(v) {
		d.fail("non-canonical varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	if n != len(binary.AppendVarint(nil, v)) {
		d.fail("non-canonical varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count of items that each take at least one byte, so a
// corrupt count cannot make the caller allocate more than the input.
func (d *decoder) count(max int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(max) || n > uint64(len(d.b)) {
		d.fail("count %d too large", n)
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length %d beyond end", n)
		return nil
	}
	v := make([]byte, n)
	copy(v, d.b)
	d.b = d.b[n:]
	return v
}

func (d *decoder) end() {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// DecodeCommand decodes and validates an encoded command. The result owns
// its memory (it does not alias b). Errors wrap ErrMalformed.
func DecodeCommand(b []byte) (Command, error) {
	d := decoder{b: b}
	c := Command{Op: Op(d.byte())}
	switch c.Op {
	case OpSet:
		c.Flags = d.byte()
	case OpIncrBy:
		c.Delta = d.varint()
	}
	n := d.count(MaxArgs)
	if n > 0 {
		c.Args = make([][]byte, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		c.Args = append(c.Args, d.bytes())
	}
	d.end()
	if d.err != nil {
		return Command{}, d.err
	}
	if err := c.Validate(); err != nil {
		return Command{}, err
	}
	return c, nil
}

// ResultKind says what a Result holds.
type ResultKind uint8

// Result kinds.
const (
	KindNil   ResultKind = iota + 1 // no value (missing key, SET NX not done)
	KindBytes                       // Bytes
	KindInt                         // Int
	KindArray                       // Array, nil entries for missing keys
	KindError                       // Code: the command failed, state unchanged
)

// ErrCode is a command-level failure. It is part of the replicated result
// (every replica computes the same), not a Go error of Apply.
type ErrCode uint8

// Command failures, with Redis's wording.
const (
	CodeNotInteger ErrCode = iota + 1 // "value is not an integer or out of range"
	CodeOverflow                      // "increment or decrement would overflow"
	CodeBadCommand                    // the command did not decode
)

// ErrNotInteger and ErrOverflow are what Store returns for the codes.
var (
	ErrNotInteger = errors.New("value is not an integer or out of range")
	ErrOverflow   = errors.New("increment or decrement would overflow")
	ErrBadCommand = errors.New("kvexample: command rejected by the state machine")
)

// Err returns the Go error of a code.
func (c ErrCode) Err() error {
	switch c {
	case CodeNotInteger:
		return ErrNotInteger
	case CodeOverflow:
		return ErrOverflow
	}
	return ErrBadCommand
}

// Result is the outcome of a Command.
type Result struct {
	Kind  ResultKind
	Bytes []byte
	Int   int64
	Array [][]byte
	Code  ErrCode
}

// EncodeResult returns r's encoding: the kind byte, then Bytes (rest of the
// input), Int (zigzag varint), Array (count, then per entry 0 for nil or
// 1, length and bytes) or Code (one byte).
func EncodeResult(r Result) []byte {
	b := []byte{byte(r.Kind)}
	switch r.Kind {
	case KindBytes:
		b = append(b, r.Bytes...)
	case KindInt:
		b = binary.AppendVarint(b, r.Int)
	case KindArray:
		b = binary.AppendUvarint(b, uint64(len(r.Array)))
		for _, v := range r.Array {
			if v == nil {
				b = append(b, 0)
				continue
			}
			b = append(b, 1)
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		}
	case KindError:
		b = append(b, byte(r.Code))
	}
	return b
}

// DecodeResult decodes an encoded result. Errors wrap ErrMalformed.
func DecodeResult(b []byte) (Result, error) {
	d := decoder{b: b}
	r := Result{Kind: ResultKind(d.byte())}
	switch r.Kind {
	case KindNil:
	case KindBytes:
		r.Bytes = append([]byte{}, d.b...)
		d.b = nil
	case KindInt:
		r.Int = d.varint()
	case KindArray:
		n := d.count(MaxArgs)
		r.Array = make([][]byte, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			switch d.byte() {
			case 0:
				r.Array = append(r.Array, nil)
			case 1:
				r.Array = append(r.Array, d.bytes())
			default:
				d.fail("bad array entry")
			}
		}
	case KindError:
		r.Code = ErrCode(d.byte())
		if r.Code == 0 || r.Code > CodeBadCommand {
			d.fail("bad error code %d", r.Code)
		}
	default:
		d.fail("bad result kind %d", r.Kind)
	}
	d.end()
	if d.err != nil {
		return Result{}, d.err
	}
	return r, nil
}

// checkedAdd adds two int64s, reporting overflow.
func checkedAdd(a, b int64) (int64, bool) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, false
	}
	return a + b, true
}
