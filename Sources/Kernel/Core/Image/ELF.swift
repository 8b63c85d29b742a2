// ELF: reading the executables Curio's programs are built as.
//
// Every program in the boot image is an ordinary statically linked ELF64
// executable for RISC-V, produced by ld.lld from the program's linker script.
// The kernel needs very little from it: where each loadable segment goes, how
// much of it comes from the file and how much is zero-filled, its permissions,
// and the entry point. Section headers, symbols and relocations are ignored;
// symbols travel separately in the boot image, already demangled.
//
// The bytes are untrusted. The boot image is built by a host tool, but a
// corrupt or hostile ELF must cost a program, never the kernel, so `ELFImage`
// checks everything before anyone uses it and reports the first problem as a
// specific `ELFError`. All arithmetic on offsets and sizes taken from the file
// is written so that it cannot overflow (compare against what is left instead
// of adding), and nothing is read before the range it lies in has been checked.
//
// The rules go beyond what ELF itself demands, because they are what make the
// loader simple:
//
//   - every PT_LOAD starts on a page boundary (our linker scripts guarantee it),
//     so a segment maps onto whole pages starting at its own first byte;
//   - no two PT_LOAD segments touch the same 4 KiB page, so each page has
//     exactly one set of permissions and one source of contents;
//   - every segment lies inside `allowedRange` (the user half of the address
//     space, as the caller defines it);
//   - the entry point lies inside an executable segment.
//
// Validation is done once, in `init`; afterwards `loadSegment(_:)` re-decodes
// the chosen program header from the already-checked table. Nothing is copied
// or allocated: the kernel has no heap, and the image stays where it is.
//
// The file also holds `UntrustedBytes`, the bounds-checked reader that the
// boot-image and device-tree parsers share with this one.

public enum ELFError: Error, Equatable, Sendable {
    /// Shorter than an ELF header.
    case truncated
    /// Does not start with 0x7F "ELF".
    case badMagic
    case notELF64LittleEndian
    /// e_machine is not EM_RISCV.
    case notRISCV
    /// e_type is not ET_EXEC (shared objects and relocatables are refused).
    case notExecutable
    /// Program header table outside the file, of the wrong entry size, too many
    /// entries, or a PT_LOAD whose file size exceeds its memory size.
    case badProgramHeaders
    /// A PT_LOAD's file bytes extend past the end of the file.
    case segmentOutsideFile
    /// A PT_LOAD's memory lies (partly) outside the allowed address range.
    case segmentOutsideAllowedRange
    /// Two PT_LOAD segments touch the same page.
    case overlappingSegments
    /// A PT_LOAD's virtual address is not page-aligned.
    case misalignedSegment
    case noLoadableSegments
    /// The entry point is not inside a segment with execute permission.
    case entryPointNotExecutable
    /// A PT_LOAD grants nothing, or write without read (which Sv39 reserves).
    case badSegmentPermissions
}

/// One PT_LOAD segment: `fileSize` bytes from `fileOffset` go to `virtualAddress`,
/// the remaining `memorySize - fileSize` bytes are zero.
public struct ELFSegment: Sendable {
    public var virtualAddress: UInt64
    public var memorySize: UInt64
    public var fileOffset: UInt64
    public var fileSize: UInt64
    public var readable: Bool
    public var writable: Bool
    public var executable: Bool
}

public struct ELFImage {
    public static let pageSize: UInt64 = 4096
    /// More program headers than this are refused; lld emits about five, and the
    /// bound keeps the pairwise overlap check cheap on hostile input.
    public static let maxProgramHeaders = 64

    public let entryPoint: UInt64
    /// The number of PT_LOAD segments; `loadSegment(_:)` takes 0..<loadSegmentCount.
    public let loadSegmentCount: Int

    private let programHeaders: UnsafeRawBufferPointer
    private let programHeaderCount: Int

    public init(_ bytes: UnsafeRawBufferPointer, allowedRange: Range<UInt64>) throws(ELFError) {
        let file = UntrustedBytes(bytes)
        guard let header = file.record(at: 0, size: FileHeader.size) else { throw .truncated }

        guard header.littleEndian(UInt32.self, at: FileHeader.magic) == FileHeader.expectedMagic else {
            throw .badMagic
        }
        guard header.byte(at: FileHeader.fileClass) == FileHeader.class64,
              header.byte(at: FileHeader.dataEncoding) == FileHeader.littleEndian
        else { throw .notELF64LittleEndian }
        guard header.littleEndian(UInt16.self, at: FileHeader.machine) == FileHeader.machineRISCV else {
            throw .notRISCV
        }
        guard header.littleEndian(UInt16.self, at: FileHeader.type) == FileHeader.typeExecutable else {
            throw .notExecutable
        }

        let tableOffset = header.littleEndian(UInt64.self, at: FileHeader.programHeaderOffset)
        let entrySize = Int(header.littleEndian(UInt16.self, at: FileHeader.programHeaderEntrySize))
        let count = Int(header.littleEndian(UInt16.self, at: FileHeader.programHeaderCount))
        guard count > 0 else { throw .noLoadableSegments }
        guard entrySize == ProgramHeader.size, count <= Self.maxProgramHeaders,
              let table = file.slice(offset: tableOffset, size: UInt64(count * ProgramHeader.size))
        else { throw .badProgramHeaders }
        programHeaders = table
        programHeaderCount = count

        var loadCount = 0
        for index in 0..<count {
            let segment = ProgramHeader(table, index: index)
            guard segment.type == ProgramHeader.typeLoad else { continue }
            guard segment.fileSize <= segment.memorySize else { throw .badProgramHeaders }
            guard segment.virtualAddress % Self.pageSize == 0 else { throw .misalignedSegment }
            let permissions = segment.flags & (ProgramHeader.flagRead | ProgramHeader.flagWrite | ProgramHeader.flagExecute)
            guard permissions != 0,
                  permissions & ProgramHeader.flagWrite == 0 || permissions & ProgramHeader.flagRead != 0 else {
                throw .badSegmentPermissions
            }
            guard file.contains(offset: segment.fileOffset, size: segment.fileSize) else {
                throw .segmentOutsideFile
            }
            guard segment.virtualAddress >= allowedRange.lowerBound,
                  segment.virtualAddress <= allowedRange.upperBound,
                  segment.memorySize <= allowedRange.upperBound - segment.virtualAddress
            else { throw .segmentOutsideAllowedRange }
            for earlier in 0..<index {
                let other = ProgramHeader(table, index: earlier)
                if other.type == ProgramHeader.typeLoad && other.sharesPage(with: segment) {
                    throw .overlappingSegments
                }
            }
            loadCount += 1
        }
        guard loadCount > 0 else { throw .noLoadableSegments }
        loadSegmentCount = loadCount

        let entry = header.littleEndian(UInt64.self, at: FileHeader.entry)
        var entryIsExecutable = false
        for index in 0..<count {
            let segment = ProgramHeader(table, index: index)
            if segment.type == ProgramHeader.typeLoad && segment.flags & ProgramHeader.flagExecute != 0
                && segment.contains(entry) {
                entryIsExecutable = true
            }
        }
        guard entryIsExecutable else { throw .entryPointNotExecutable }
        entryPoint = entry
    }

    /// The end of the highest loadable segment.
    public var endAddress: UInt64 {
        var end: UInt64 = 0
        for index in 0..<loadSegmentCount {
            let segment = loadSegment(index)
            end = max(end, segment.virtualAddress + segment.memorySize)
        }
        return end
    }

    /// The `index`th PT_LOAD segment, counting in program-header order.
    public func loadSegment(_ index: Int) -> ELFSegment {
        precondition(index >= 0 && index < loadSegmentCount, "ELF segment index out of range")
        var remaining = index
        for headerIndex in 0..<programHeaderCount {
            let header = ProgramHeader(programHeaders, index: headerIndex)
            guard header.type == ProgramHeader.typeLoad else { continue }
            if remaining == 0 {
                return ELFSegment(
                    virtualAddress: header.virtualAddress, memorySize: header.memorySize,
                    fileOffset: header.fileOffset, fileSize: header.fileSize,
                    readable: header.flags & ProgramHeader.flagRead != 0,
                    writable: header.flags & ProgramHeader.flagWrite != 0,
                    executable: header.flags & ProgramHeader.flagExecute != 0)
            }
            remaining -= 1
        }
        fatalError("ELF segment count changed after validation")
    }
}

/// The ELF64 file header, as far as the loader reads it (all little-endian).
///
///    0               4      5      6      7                    16
///   +---------------+------+------+------+--------------------+
///   | 7F 'E' 'L' 'F'| class| data | ver  |  (padding)         |  e_ident
///   +---------------+------+------+------+--------------------+
///   16 type u16 | 18 machine u16 | 20 version u32
///   24 entry u64
///   32 phoff u64                  (program header table offset)
///   40 shoff u64                  (ignored)
///   48 flags u32 | 52 ehsize u16 | 54 phentsize u16 | 56 phnum u16
///   58 shentsize u16 | 60 shnum u16 | 62 shstrndx u16   -> 64 bytes
private enum FileHeader {
    static let size = 64
    static let magic = 0
    static let fileClass = 4
    static let dataEncoding = 5
    static let type = 16
    static let machine = 18
    static let entry = 24
    static let programHeaderOffset = 32
    static let programHeaderEntrySize = 54
    static let programHeaderCount = 56

    /// 7F 'E' 'L' 'F' read as a little-endian u32.
    static let expectedMagic: UInt32 = 0x464C_457F
    static let class64: UInt8 = 2
    static let littleEndian: UInt8 = 1
    static let typeExecutable: UInt16 = 2
    static let machineRISCV: UInt16 = 243
}

/// One ELF64 program header, decoded from a table whose bounds were checked.
///
///    0 type u32 | 4 flags u32 (X=1 W=2 R=4)
///    8 offset u64     (in the file)
///   16 vaddr u64
///   24 paddr u64      (ignored)
///   32 filesz u64
///   40 memsz u64
///   48 align u64      (ignored: alignment is checked on vaddr)   -> 56 bytes
private struct ProgramHeader {
    static let size = 56
    static let typeLoad: UInt32 = 1
    static let flagExecute: UInt32 = 1
    static let flagWrite: UInt32 = 2
    static let flagRead: UInt32 = 4

    let type: UInt32
    let flags: UInt32
    let fileOffset: UInt64
    let virtualAddress: UInt64
    let fileSize: UInt64
    let memorySize: UInt64

    init(_ table: UnsafeRawBufferPointer, index: Int) {
        let start = index * Self.size
        let record = FixedRecord(UnsafeRawBufferPointer(rebasing: table[start..<start + Self.size]))
        type = record.littleEndian(UInt32.self, at: 0)
        flags = record.littleEndian(UInt32.self, at: 4)
        fileOffset = record.littleEndian(UInt64.self, at: 8)
        virtualAddress = record.littleEndian(UInt64.self, at: 16)
        fileSize = record.littleEndian(UInt64.self, at: 32)
        memorySize = record.littleEndian(UInt64.self, at: 40)
    }

    /// Only meaningful once the segment is known to fit the address space
    /// (`virtualAddress + memorySize` does not overflow).
    func contains(_ address: UInt64) -> Bool {
        address >= virtualAddress && address - virtualAddress < memorySize
    }

    /// Whether the two segments' page ranges intersect. Empty segments touch no
    /// page. Works on inclusive page numbers so that a segment ending at the top
    /// of the address space cannot overflow when rounded up.
    func sharesPage(with other: ProgramHeader) -> Bool {
        guard memorySize > 0, other.memorySize > 0 else { return false }
        let firstPage = virtualAddress / ELFImage.pageSize
        let lastPage = (virtualAddress + (memorySize - 1)) / ELFImage.pageSize
        let otherFirstPage = other.virtualAddress / ELFImage.pageSize
        let otherLastPage = (other.virtualAddress + (other.memorySize - 1)) / ELFImage.pageSize
        return firstPage <= otherLastPage && otherFirstPage <= lastPage
    }
}

/// Bytes that came from outside the kernel's control: a file in the boot image,
/// the firmware's device tree. Every access states its range first and gets nil
/// if the range is not entirely inside; the range checks compare against the
/// space that is left, so no offset or size, however large, can overflow them.
struct UntrustedBytes {
    let buffer: UnsafeRawBufferPointer

    init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    var count: Int { buffer.count }

    /// Whether [offset, offset + size) lies inside the bytes.
    func contains(offset: UInt64, size: UInt64) -> Bool {
        offset <= UInt64(buffer.count) && size <= UInt64(buffer.count) - offset
    }

    func slice(offset: UInt64, size: UInt64) -> UnsafeRawBufferPointer? {
        guard contains(offset: offset, size: size) else { return nil }
        let start = Int(offset)
        return UnsafeRawBufferPointer(rebasing: buffer[start..<start + Int(size)])
    }

    /// A fixed-size record at `offset`, or nil if it does not fit.
    func record(at offset: UInt64, size: Int) -> FixedRecord? {
        slice(offset: offset, size: UInt64(size)).map(FixedRecord.init)
    }

    func bigEndian<Value: FixedWidthInteger & BitwiseCopyable>(_: Value.Type, at offset: Int) -> Value? {
        guard offset >= 0 else { return nil }
        return record(at: UInt64(offset), size: MemoryLayout<Value>.size)?.bigEndian(Value.self, at: 0)
    }
}

/// A record whose size has already been checked against its untrusted source.
/// Fields are read at constant offsets inside it, so a read outside it is a bug
/// in the parser, not bad input, and traps.
struct FixedRecord {
    let bytes: UnsafeRawBufferPointer

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    func byte(at offset: Int) -> UInt8 {
        bytes[offset]
    }

    func littleEndian<Value: FixedWidthInteger & BitwiseCopyable>(_: Value.Type, at offset: Int) -> Value {
        precondition(offset >= 0 && offset <= bytes.count - MemoryLayout<Value>.size, "field outside record")
        return Value(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Value.self))
    }

    func bigEndian<Value: FixedWidthInteger & BitwiseCopyable>(_: Value.Type, at offset: Int) -> Value {
        precondition(offset >= 0 && offset <= bytes.count - MemoryLayout<Value>.size, "field outside record")
        return Value(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Value.self))
    }

    /// The bytes [offset, offset + size) of the record.
    func slice(at offset: Int, size: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + size])
    }
}
