// What an interrupted operation left behind for its re-run: the few numbers the
// engine cannot rediscover from the disk. The server stores the intent in its
// state region each time `checkpoint` is called and hands it back, unchanged,
// when it re-runs the same operation after a crash. 128 bytes, plain data.
//
//   off  size  field                   meaning
//   ---  ----  ----------------------  ---------------------------------------
//     0   8    tag                     the server's; identifies the operation
//     8   1    kind                    which operation wrote the rest (0: fresh)
//     9   1    reservationKind         0 none, 1 blocks to allocate, 2 to free
//    10   1    reservationCount        entries used in `blocks`
//    12   4    inode                   created / removed / renamed inode
//    16   4    otherInode              rename: the inode the target name had
//    20   4    generation              of `inode` when recorded (reuse guard)
//    24   2    linksTarget             unlink of a hard link: links after
//    26   2    otherLinksTarget        rename: target's links after
//    28   4    directoryBlock          mkdir: the new directory's first block
//    32   4    reservationInode        inode whose block map `blocks` serve
//    36   4    reservationFirst        allocate: chunk index; free: first block
//    40   4    reservationEnd          free: end of the freed logical range
//    44   4    reservationSectors      i_blocks after the chunk / step
//    48  80    blocks[20]              the reserved / released block numbers
//
// The engine only ever *adds* facts to an intent before a checkpoint and reads
// them back on the re-run; see Operations.swift for the protocol.

import FileSystemCore

public struct Ext2Intent: BitwiseCopyable {
    public var tag: UInt64
    var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

    public init(tag: UInt64) {
        self.tag = tag
        words = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    }

    static let reservationCapacity = 20

    /// Fields are read from their word of `words`: `withUnsafeBytes(of: words)` copied
    /// all 120 bytes to the stack to read one. No field crosses a word.
    private func word(_ index: Int) -> UInt64 {
        let value: UInt64 = switch index {
        case 0: words.0
        case 1: words.1
        case 2: words.2
        case 3: words.3
        case 4: words.4
        case 5: words.5
        case 6: words.6
        case 7: words.7
        case 8: words.8
        case 9: words.9
        case 10: words.10
        case 11: words.11
        case 12: words.12
        case 13: words.13
        default: words.14
        }
        return UInt64(littleEndian: value)
    }
    private func field(_ offset: Int) -> UInt64 { word(offset >> 3) >> UInt64((offset & 7) * 8) }

    private func byte(_ offset: Int) -> UInt8 { UInt8(truncatingIfNeeded: field(offset)) }
    private mutating func setByte(_ offset: Int, _ value: UInt8) { withUnsafeMutableBytes(of: &words) { $0[offset] = value } }
    private func word16(_ offset: Int) -> UInt16 { UInt16(truncatingIfNeeded: field(offset)) }
    private mutating func setWord16(_ offset: Int, _ value: UInt16) { withUnsafeMutableBytes(of: &words) { $0.setLE16(offset, value) } }
    private func word32(_ offset: Int) -> UInt32 { UInt32(truncatingIfNeeded: field(offset)) }
    private mutating func setWord32(_ offset: Int, _ value: UInt32) { withUnsafeMutableBytes(of: &words) { $0.setLE32(offset, value) } }

    var kind: OperationKind {
        get { OperationKind(rawValue: byte(0)) ?? .none }
        set { setByte(0, newValue.rawValue) }
    }
    var reservationKind: ReservationKind {
        get { ReservationKind(rawValue: byte(1)) ?? .none }
        set { setByte(1, newValue.rawValue) }
    }
    var reservationCount: Int {
        get { min(Int(byte(2)), Self.reservationCapacity) }
        set { setByte(2, UInt8(newValue)) }
    }
    var inode: UInt32 { get { word32(4) } set { setWord32(4, newValue) } }
    var otherInode: UInt32 { get { word32(8) } set { setWord32(8, newValue) } }
    var generation: UInt32 { get { word32(12) } set { setWord32(12, newValue) } }
    var linksTarget: UInt16 { get { word16(16) } set { setWord16(16, newValue) } }
    var otherLinksTarget: UInt16 { get { word16(18) } set { setWord16(18, newValue) } }
    var directoryBlock: UInt32 { get { word32(20) } set { setWord32(20, newValue) } }
    var reservationInode: UInt32 { get { word32(24) } set { setWord32(24, newValue) } }
    var reservationFirst: UInt32 { get { word32(28) } set { setWord32(28, newValue) } }
    var reservationEnd: UInt32 { get { word32(32) } set { setWord32(32, newValue) } }
    var reservationSectors: UInt32 { get { word32(36) } set { setWord32(36, newValue) } }

    func reservedBlock(_ index: Int) -> UInt32 { word32(40 + 4 * index) }
    mutating func setReservedBlock(_ index: Int, _ value: UInt32) { setWord32(40 + 4 * index, value) }

    mutating func clearReservation() {
        reservationKind = .none
        reservationCount = 0
        reservationInode = 0
        reservationFirst = 0
        reservationEnd = 0
        reservationSectors = 0
    }

    /// True when `block` is one this intent reserves or is releasing, or its
    /// new directory block: others must not allocate it until the re-run ends.
    func holds(block: UInt32) -> Bool {
        if block != 0 && block == directoryBlock { return true }
        guard reservationKind != .none else { return false }
        for index in 0..<reservationCount where reservedBlock(index) == block { return true }
        return false
    }
}

enum OperationKind: UInt8 {
    case none = 0, write, truncate, create, unlink, removeDirectory, rename
}

enum ReservationKind: UInt8 {
    case none = 0, allocate, free
}
