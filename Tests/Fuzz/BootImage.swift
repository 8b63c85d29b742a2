// Fuzz target `boot-image`: the boot-image reader, and the kernel booting from
// what it accepted.
//
// The input is a boot image; the seeds are images mkimage packed from a small
// system description of real programs, and a hand-made one. `BootImage` checks it;
// for an image it accepts, the harness calls every accessor on every program (its
// descriptor, its ELF, a lookup by name, symbolization of addresses around every
// symbol), then builds a kernel on fake RAM exactly as the riscv64 boot does —
// kernel root table with the two identity gigapages, the task table — and starts
// the boot programs, then tries to spawn every program once more: each ELF goes
// through `ELFImage` and the loader (segments, heap, stack, SSR window, device
// windows, interrupts), so a descriptor or ELF that the readers let through but the
// kernel cannot live with traps here.

import CurioABI
@testable import KernelCore

struct FuzzPlatform: Platform {
    let memory: FuzzRAM
    func now() -> UInt64 { 0 }
    mutating func setInterrupt(_ irq: UInt32, enabled: Bool) {}
    mutating func flushAddressSpace(asid: UInt16) {}
    mutating func flushPage(_ address: UInt64, asid: UInt16) {}
    mutating func synchronizeInstructions() {}
    mutating func requestPowerOff(code: Int) {}
    var virtioRange: Range<UInt64> { 0x1000_1000..<0x1000_9000 }
    func readDeviceRegister(_ address: UInt64) -> UInt32 { 0 }
    mutating func writeDeviceRegister(_ address: UInt64, _ value: UInt32) {}
    func write(_ text: StaticString) {}
    func write(bytes: UnsafeRawBufferPointer) { _ = bytes.reduce(0, &+) }
    func write(decimal: Int) {}
    func write(hex: UInt64) {}
}

typealias FuzzKernel = Kernel<FuzzPlatform>

nonisolated(unsafe) let ram = FuzzRAM(megabytes: 4)
nonisolated(unsafe) let taskStorage = UnsafeMutablePointer<KernelCore.Task>.allocate(capacity: FuzzKernel.maxTasks)
nonisolated(unsafe) let registerStorage = UnsafeMutablePointer<UInt64>.allocate(
    capacity: FuzzKernel.maxTasks * RegisterFile.slots)
let bootArguments: StaticString = "ps; echo fuzz"

/// Every accessor on every program of an accepted image.
func readEverything(_ image: BootImage) {
    for index in 0..<image.programCount {
        let program = image.program(index)
        for interrupt in 0..<program.interruptCount { _ = program.interrupt(interrupt) }
        for device in 0..<program.deviceCount { _ = program.device(device) }
        let elf = image.elf(of: index)
        _ = elf.reduce(0, &+)
        let found = program.name.withBytes { image.index(of: $0) }
        precondition(found == index, "a program is not found by its own name")
        for address: UInt64 in [0, 0x4000_0000, 0x4000_0123, 0x5FFF_FFFF, UInt64.max] {
            if let (name, _) = image.symbolize(program: index, address: address) { _ = name.reduce(0, &+) }
        }
    }
}

/// Boots a kernel from the image: the boot programs, then every program once more.
func boot(_ image: BootImage) {
    var frames = FrameAllocator(memory: ram, range: ram.range)
    guard let root = frames.allocate() else { return }
    let kernelSpace = AddressSpace(root: root)
    let global: PageFlags = [.read, .write, .global, .accessed, .dirty]
    do throws(MapError) {
        try kernelSpace.mapGigapage(VirtualAddress(0), to: PhysicalAddress(0), flags: global, memory: ram)
        try kernelSpace.mapGigapage(VirtualAddress(0x8000_0000), to: PhysicalAddress(0x8000_0000),
                                    flags: global.union(.execute), memory: ram)
    } catch {
        preconditionFailure("the fake kernel space cannot be mapped")
    }
    registerStorage.initialize(repeating: 0, count: FuzzKernel.maxTasks * RegisterFile.slots)
    let arguments = UnsafeRawBufferPointer(start: bootArguments.utf8Start, count: bootArguments.utf8CodeUnitCount)
    var kernel = FuzzKernel(platform: FuzzPlatform(memory: ram), frames: frames, image: image, kernelRoot: root,
                            taskStorage: taskStorage, registerStorage: registerStorage, bootArguments: arguments)
    kernel.startBootPrograms()
    for program in 0..<image.programCount {
        _ = try? kernel.spawn(program: program, arguments: arguments, parent: nil)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBootImage(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let image = try? BootImage(UnsafeRawBufferPointer(start: data, count: size)) else { return 0 }
    readEverything(image)
    boot(image)
    return 0
}
