// The initial sequence number of a passive open, chosen so that a restarted server can
// recognise the handshake it never saw (SYN cookies, RFC 4987 §3.6).
//
// Why. A connection nobody accepted yet is in no client's SSR: a crash of the server
// between the SYN and the accept loses it, and the peer's next segment — its request,
// sent again because we acknowledge bytes only once delivered — would meet no
// connection and be answered with a reset. Instead the server makes its SYN-ACK's
// sequence number a keyed hash of the connection's endpoints and a coarse clock, with
// the peer's MSS and window shift folded in; the key lives in the listening socket's
// SSR record, so it survives the crash. An acknowledgment that arrives for a listening
// port with no connection is checked against the cookie (this time slot or the one
// before): a match proves the peer answered our SYN-ACK, and gives back what its SYN
// said, so the connection is rebuilt as if the handshake had just completed.
//
//   bits 31...27  time slot (64 s each, mod 32)
//   bits 26...25  MSS index: 536, 1220, 1440, 1460 (the largest not above the peer's)
//   bits 24...21  window shift 0...14, or 15: the peer sent no window scale option
//   bits 20...0   keyed hash of the key, the endpoints, the slot and bits 31...21
//
// 21 bits of hash: an off-path attacker must guess one of 2^21 values per port pair,
// and wins at most an established connection that waits for accept (no data of ours
// is in it), which is what SYN cookies accept everywhere.

public struct SynCookie: Equatable, Sendable {
    public static let segmentSizes: [UInt16] = [536, 1220, 1440, 1460]
    static let noWindowShift: UInt32 = 15

    /// The peer's MSS (rounded down to one of `segmentSizes`) and window shift (nil:
    /// it sent none), as the cookie carries them.
    public var maximumSegmentSize: UInt16
    public var windowShift: UInt8?

    /// The slot of `ticks` on a clock of `ticksPerSecond`.
    public static func slot(at ticks: UInt64, ticksPerSecond: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: ticks / (64 * ticksPerSecond)) & 31
    }

    /// The sequence number for a SYN-ACK to `remote` on `localPort`.
    public static func make(key: UInt64, localPort: UInt16, remote: Endpoint, slot: UInt32,
                            maximumSegmentSize: UInt16?, windowShift: UInt8?) -> UInt32 {
        let peerMSS = maximumSegmentSize ?? 536
        var index: UInt32 = 0
        for (candidate, size) in segmentSizes.enumerated() where size <= peerMSS { index = UInt32(candidate) }
        let shift = windowShift.map { UInt32(min($0, 14)) } ?? noWindowShift
        let fields = (slot & 31) << 27 | index << 25 | shift << 21
        return fields | hash(key: key, localPort: localPort, remote: remote, fields: fields)
    }

    /// What a cookie says, if `sequence` is one this key made for these endpoints in
    /// the slot of `now` or the one before.
    public static func check(_ sequence: UInt32, key: UInt64, localPort: UInt16, remote: Endpoint, now: UInt64,
                             ticksPerSecond: UInt64) -> SynCookie? {
        let fields = sequence & ~0x1F_FFFF
        let current = slot(at: now, ticksPerSecond: ticksPerSecond)
        let cookieSlot = fields >> 27
        guard cookieSlot == current || cookieSlot == (current &- 1) & 31,
              sequence & 0x1F_FFFF == hash(key: key, localPort: localPort, remote: remote, fields: fields) else {
            return nil
        }
        let shift = (fields >> 21) & 15
        return SynCookie(maximumSegmentSize: segmentSizes[Int((fields >> 25) & 3)],
                         windowShift: shift == noWindowShift ? nil : UInt8(shift))
    }

    static func hash(key: UInt64, localPort: UInt16, remote: Endpoint, fields: UInt32) -> UInt32 {
        var value = key ^ UInt64(remote.word) &* 0x9E37_79B9_7F4A_7C15
        value ^= UInt64(localPort) << 48 | UInt64(fields)
        value = (value ^ (value >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        value = (value ^ (value >> 33)) &* 0xC4CE_B9FE_1A85_EC53
        value ^= value >> 33
        return UInt32(truncatingIfNeeded: value) & 0x1F_FFFF
    }
}
