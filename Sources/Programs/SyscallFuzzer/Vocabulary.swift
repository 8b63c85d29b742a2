// The fuzzer's vocabulary: a seeded generator, and the values it draws arguments from.
//
// Uniformly random 64-bit words almost never mean anything to a kernel: a random
// pointer is unmapped, a random length is absurd, a random TaskID names no slot. The
// bugs live at the edges, so most draws come from lists of edges instead — the
// values either side of every limit the kernel checks (a message's 4 KiB, a name's
// 15 bytes, the 320 task slots, 32- and 64-bit boundaries) and addresses chosen for
// what is, or is not, behind them:
//
//   place           address                                   the kernel must
//   --------------  ----------------------------------------  ---------------------------
//   null            0                                         refuse (if length > 0)
//   scratch         our own pages, anywhere inside            accept
//   scratch edge    across the boundary of two of our pages   accept
//   text            our read-only code                        accept reads, refuse writes
//   stack top       our last stack bytes and on into 0x8000_0000, the kernel's RAM: refuse
//   below stack     a few pages under the stack top, across whatever the guard is (unknown)
//   kernel image    0x8020_0000...                            refuse
//   RAM             any of the machine's RAM, or just past it refuse
//   MMIO            UART, CLINT, PLIC, power-off, virtio      refuse
//   SSR window      0x6000_0000, mapped in servers only       refuse
//   device window   0x7000_0000, mapped in drivers only       refuse
//   foreign heap    where a bigger program's heap would be    refuse
//   user start      across 0x4000_0000 from below             refuse
//   high half       sign-extended, non-canonical, 2^63        refuse
//   wrapping        near 2^64, with a length that wraps       refuse
//   random          any 64-bit value                          (unknown)
//
// "Refuse" is an oracle: a call whose checked buffer is in a refused place with a
// nonzero length must fail, and one that succeeds is reported as a violation.
//
// A writable pointer never lands where a kernel that wrongly accepted it could
// damage anything but the scratch pages: not on our stack or heap (the kernel's
// write would crash the fuzzer and hide what happened), only on pages the oracle
// watches (see `Arena`).

import CurioUser

/// xorshift64* (Vigna): small, fast, and the whole sequence follows from the seed.
struct Xorshift {
    private var state: UInt64

    init(seed: UInt64) {
        // splitmix64 once, so that seeds 1, 2, 3 start far apart (and 0 is not stuck).
        var mixed = seed &+ 0x9E37_79B9_7F4A_7C15
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        mixed ^= mixed >> 31
        state = mixed == 0 ? 1 : mixed
    }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    mutating func word() -> UInt { UInt(next()) }

    /// 0..<bound (bound > 0).
    mutating func below(_ bound: UInt) -> UInt { UInt(next() % UInt64(bound)) }

    /// An index into a collection of `count` elements.
    mutating func index(_ count: Int) -> Int { Int(below(UInt(count))) }

    mutating func percent(_ chance: UInt) -> Bool { below(100) < chance }

    mutating func pick(_ values: [UInt]) -> UInt { values[index(values.count)] }
}

/// The fuzzer's own memory, laid out so that a kernel writing where it must not is
/// seen: [canary][scratch 0][scratch 1][pad][canary], page-aligned. Writable
/// pointers aim into the two scratch pages (a length of at most 4 KiB from there
/// ends inside the pad); the canary pages are never handed out and must keep their
/// pattern.
struct Arena {
    static let pageSize = 4096
    static let scratchBytes = 2 * pageSize
    let base: UnsafeMutableRawPointer

    init(random: inout Xorshift) {
        base = UnsafeMutableRawPointer(
            UnsafeMutableRawBufferPointer.allocate(byteCount: 5 * Self.pageSize, alignment: Self.pageSize).baseAddress!)
        for offset in stride(from: 0, to: 5 * Self.pageSize, by: 8) {
            base.storeBytes(of: random.next(), toByteOffset: offset, as: UInt64.self)
        }
        fillCanaries()
    }

    var scratch: UInt { UInt(bitPattern: base) + UInt(Self.pageSize) }

    private func canaryWord(_ page: Int, _ offset: Int) -> UInt64 {
        0xC0FF_EE00_0000_0000 | UInt64(page) << 32 | UInt64(offset)
    }

    private func fillCanaries() {
        for page in [0, 4] {
            for offset in stride(from: 0, to: Self.pageSize, by: 8) {
                base.storeBytes(of: canaryWord(page, offset), toByteOffset: page * Self.pageSize + offset, as: UInt64.self)
            }
        }
    }

    /// The offset of the first canary word that changed, if any.
    func damagedCanary() -> Int? {
        for page in [0, 4] {
            for offset in stride(from: 0, to: Self.pageSize, by: 8)
            where base.load(fromByteOffset: page * Self.pageSize + offset, as: UInt64.self) != canaryWord(page, offset) {
                return page * Self.pageSize + offset
            }
        }
        return nil
    }
}

/// A pointer argument, and what the kernel must do with a buffer there.
struct Pointer {
    var address: UInt
    var mustRefuseReads: Bool
    var mustRefuseWrites: Bool
    /// For places at a boundary: the bytes before it. Only a longer buffer crosses
    /// into what the kernel must refuse.
    var crossesAfter: UInt?

    static func scratch(_ address: UInt) -> Pointer {
        Pointer(address: address, mustRefuseReads: false, mustRefuseWrites: false)
    }

    func mustRefuse(length: UInt, writable: Bool) -> Bool {
        guard length > 0, writable ? mustRefuseWrites : mustRefuseReads else { return false }
        return crossesAfter.map { length > $0 } ?? true
    }
}

/// Values at and around every limit the kernel checks.
enum Edges {
    static let words: [UInt] = [
        0, 1, 2, 3, 7, 8, 15, 16, 0x7F, 0x80, 0xFF, 0x100, UInt(TaskID.slotCount) - 1, UInt(TaskID.slotCount),
        UInt(TaskID.slotCount) + 1, 4095, 4096, 4097, 0xFFFF, 0x1_0000,
        0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000, 0xFFFF_FFFF_FFFF, 0x1_0000_0000_0000,
        UInt(Int.max), UInt(bitPattern: Int.min), UInt.max - 1, UInt.max,
    ]

    static let lengths: [UInt] = [
        0, 1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 127, 128, 129, 511, 512, 4095, 4096, 4097, 8192, 0x7FFF_FFFF,
        0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000, UInt(Int.max), UInt(bitPattern: Int.min), UInt.max,
    ]

    /// Program names the kernel knows, and some it does not (too long, empty, a prefix).
    static let names: [StaticString] = [
        "console", "shell", "timer", "fs", "storage", "config", "pingserver", "fuzzer", "crashme", "ssrping",
        "rogueserver", "nosuchprogram", "f", "consolex", "a-name-of-16-byt", "timer\u{0}", "",
    ]
}

/// Draws arguments from the vocabulary above.
struct Vocabulary {
    var random: Xorshift
    let arena: Arena
    /// Our own TaskID and the servers' (refreshed as they restart): real, stale and
    /// forged IDs are drawn around them.
    var me: UInt32 = 0
    var servers: [UInt32] = []

    init(seed: UInt64) {
        random = Xorshift(seed: seed)
        arena = Arena(random: &random)
    }

    mutating func word() -> UInt {
        switch random.below(10) {
        case 0...4: return random.pick(Edges.words)
        case 5, 6: return random.below(64)
        default: return random.word()
        }
    }

    /// A 32-bit word (for the halves of packed registers).
    mutating func halfWord() -> UInt { word() & 0xFFFF_FFFF }

    mutating func length(limit: Int) -> UInt {
        switch random.below(10) {
        case 0...3: return random.pick(Edges.lengths)
        case 4: return UInt(limit) + random.below(2)
        case 5: return UInt(limit) &- random.below(2)
        default: return random.below(UInt(limit) + 1)
        }
    }

    /// A TaskID register: ours, a server's, stale or forged ones, slots past the
    /// table's end, the kernel's sender ID, and values too wide to be a TaskID.
    mutating func taskID() -> UInt {
        let known = servers.isEmpty ? me : servers[random.index(servers.count)]
        switch random.below(12) {
        case 0: return UInt(me)
        case 1, 2: return UInt(known)
        case 3: return UInt(known &+ 0x1_0000)  // the next generation
        case 4: return UInt(known &- 0x1_0000)  // the one before
        case 5: return UInt(known & 0xFFFF)  // generation 0
        case 6: return UInt(known | 0xFFFF_0000)
        case 7: return random.below(UInt(TaskID.slotCount) + 20) | random.below(4) << 16
        case 8: return UInt(TaskID.slotCount) + random.below(0xFFFF - UInt(TaskID.slotCount)) | random.below(0x1_0000) << 16
        case 9: return UInt(TaskID.kernel.rawValue)
        case 10: return random.word() | 1 << 32
        default: return random.word() & 0xFFFF_FFFF
        }
    }

    /// A pointer into one of the places above. `length`: the fixed size the kernel
    /// will check there, if the call has one.
    mutating func pointer(writable: Bool, length: UInt? = nil) -> Pointer {
        let scratch = arena.scratch
        let page = UInt(Arena.pageSize)
        // Places where a write could reach our own live memory are drawn for reads only.
        let places: UInt = writable ? 14 : 16
        switch random.below(places) {
        case 0:
            return Pointer(address: 0, mustRefuseReads: true, mustRefuseWrites: true)
        case 1, 2:
            return Pointer(address: scratch + random.below(UInt(Arena.scratchBytes)), mustRefuseReads: false,
                           mustRefuseWrites: false)
        case 3:
            let boundary = scratch + page * (1 + random.below(2))
            return Pointer(address: boundary - 1 - random.below(64), mustRefuseReads: false, mustRefuseWrites: false)
        case 4:
            return Pointer(address: 0x4000_0000 + random.below(0x4000), mustRefuseReads: false, mustRefuseWrites: true)
        case 5:
            // A fixed-size write must cross too: short of the boundary it is our own stack.
            let reach = length.map { max($0, 2) - 1 } ?? 256
            let address = 0x8000_0000 - 1 - random.below(reach)
            return Pointer(address: address, mustRefuseReads: true, mustRefuseWrites: true,
                           crossesAfter: 0x8000_0000 - address)
        case 6:
            return Pointer(address: 0x8020_0000 + random.below(0x10_0000), mustRefuseReads: true, mustRefuseWrites: true)
        case 7:
            let address = random.percent(80) ? 0x8000_0000 + random.below(0x800_0000) : 0x8800_0000 + random.below(0x10_0000)
            return Pointer(address: address, mustRefuseReads: true, mustRefuseWrites: true)
        case 8:
            let devices: [UInt] = [0x1000_0000, 0x0200_0000, 0x0C00_0000, 0x0010_0000, 0x0010_1000, 0x1000_1000,
                                   0x1000_8000]
            return Pointer(address: random.pick(devices) + random.below(0x100), mustRefuseReads: true,
                           mustRefuseWrites: true)
        case 9:
            return Pointer(address: SSRWindow.base + random.below(UInt(SSRWindow.maxPages) * page),
                           mustRefuseReads: true, mustRefuseWrites: true)
        case 10:
            return Pointer(address: 0x7000_0000 + random.below(0x10_0000), mustRefuseReads: true, mustRefuseWrites: true)
        case 11:
            return Pointer(address: 0x4010_0000 + random.below(0x100_0000), mustRefuseReads: true, mustRefuseWrites: true)
        case 12:
            let address = 0x4000_0000 - 1 - random.below(page)
            return Pointer(address: address, mustRefuseReads: true, mustRefuseWrites: true)
        case 13:
            switch random.below(4) {
            case 0:
                let address = UInt.max - random.below(4096)
                return Pointer(address: address, mustRefuseReads: true, mustRefuseWrites: true)
            case 1:
                return Pointer(address: 0xFFFF_FFC0_0000_0000 + random.below(0x100_0000), mustRefuseReads: true,
                               mustRefuseWrites: true)
            case 2:
                return Pointer(address: 0x40_0000_0000 + random.below(0x1000), mustRefuseReads: true,
                               mustRefuseWrites: true)
            default:
                return Pointer(address: 1 << 63 | 0x4000_0000 + random.below(0x1000), mustRefuseReads: true,
                               mustRefuseWrites: true)
            }
        case 14:
            let address = 0x8000_0000 - page * (1 + random.below(8)) - random.below(64)
            return Pointer(address: address, mustRefuseReads: false, mustRefuseWrites: false,
                           crossesAfter: address & (page - 1) == 0 ? page : page - address & (page - 1))
        default:
            return Pointer(address: random.word(), mustRefuseReads: false, mustRefuseWrites: false)
        }
    }

    /// A pointer and a length for a buffer the kernel checks against `limit`.
    mutating func buffer(writable: Bool, limit: Int) -> (Pointer, UInt) {
        let pointer = pointer(writable: writable)
        // At a boundary, mostly a length that crosses it; always when the kernel
        // would write, since the near side of the stack top is our own stack.
        if let before = pointer.crossesAfter, writable || random.percent(75) {
            return (pointer, before + 1 + random.below(64))
        }
        return (pointer, length(limit: limit))
    }
}
