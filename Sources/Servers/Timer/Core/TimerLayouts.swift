// How a version of the timer server lays out a client's timers in its SSR.
//
// The timer's logic (TimerLogic, TimerTransition) works on `TimerClientState`; a
// version of the server may store that state in its SSRs in a layout of its own, and
// must read the layout of the version it replaces (a live upgrade, Kernel+Upgrade.swift;
// the SSR runtime migrates each region once). Two versions exist:
//
//   layout 1 (`TimerClientState`, the `timer` program): the four slots, then the
//     generation; 136 bytes, committed whole.
//
//     0    slot 0 (id, flags, reserved, period, nextDeadline, nextSequence)  32 bytes
//     32   slot 1      64  slot 2      96  slot 3
//     128  generation u16 | reserved u16 | reserved u32
//
//   layout 2 (`TimerStateV2`, the `timer-next` program): the generation first, then
//     the slots, so that a commit stores only the header and the slots up to the last
//     one in use (SSRFormat's prefix commits): 40 bytes for a client with one timer in
//     slot 0, instead of 136.
//
//     0    generation u16 | reserved u16 | reserved u32
//     8    slot 0      40  slot 1      72  slot 2      104 slot 3          -> 136 bytes
//
// A layout converts to and from `TimerClientState` without loss; layout 2 migrates
// layout 1 by moving the fields.
//
// Fewer bytes stored is not fewer instructions here: the timer's state is small, a
// whole state is hashed by an unrolled loop of constant length where a prefix takes
// a loop of variable length, and the conversions cost a copy each. Measured with
// `curio-profile` over `run timerclient 20000 300 mixed`, the server ran 10.10 M
// instructions as `timer` and 10.35 M as `timer-next` (+2.4 %). Layout 2 is here to
// show a live upgrade that changes a layout, not to make the timer faster.

import SSRFormat

/// A layout of one client's timers in its SSR.
public protocol TimerStateLayout: SSRStateLayout where Canonical == TimerClientState {}

extension TimerClientState: TimerStateLayout {
    public typealias Previous = TimerClientState
    public static var layoutVersion: UInt32 { 1 }
    public init(_ state: TimerClientState) { self = state }
    public var state: TimerClientState { self }
}

/// Layout 2: the header first, so that a commit stores only the slots in use.
public struct TimerStateV2: TimerStateLayout {
    public typealias Previous = TimerClientState

    public var generation: UInt16
    public var reserved0: UInt16
    public var reserved1: UInt32
    public var slots: InlineArray<4, TimerSlot>

    public static var layoutVersion: UInt32 { 2 }
    public static var previousLayoutVersion: UInt32? { TimerClientState.layoutVersion }
    static let headerBytes = 8

    public init(_ state: TimerClientState) {
        generation = state.generation
        reserved0 = state.reserved0
        reserved1 = state.reserved1
        slots = state.slots
    }

    public var state: TimerClientState {
        TimerClientState(slots: slots, generation: generation, reserved0: reserved0, reserved1: reserved1)
    }

    public static func migrating(_ previous: TimerClientState) -> TimerStateV2? { TimerStateV2(previous) }

    public static func significantBytes(of layout: UnsafePointer<TimerStateV2>) -> Int {
        var used = TimerLimits.timersPerClient
        while used > 0 && layout.pointee.slots[used - 1].isFree { used -= 1 }
        return headerBytes + used * MemoryLayout<TimerSlot>.stride
    }
}
