// Boot: from OpenSBI's jump to the first user process.
//
// Boot order:
//   1. entry.S     set the stack pointer, zero .bss, call kernel_main(hart, dtb)
//   2. console     the kernel's polled UART output, for the banner and reports
//   3. devicetree  read the RAM size and the command line (bootargs), copying
//                  the command line before the allocator can reuse its page
//   4. frames      hand every page from the kernel's end to the end of RAM to
//                  the frame allocator
//   5. paging      build the kernel page table (an identity map of MMIO and RAM,
//                  global, supervisor-only, W^X per kernel section: see
//                  KernelMappings.swift) and turn Sv39 on
//   6. traps       point stvec at trap.S, sscratch = 0 (we are in the kernel)
//   7. interrupts  PLIC: S-mode context of hart 0, threshold 0; enable timer and
//                  external interrupts in sie (sstatus.SIE stays off: the kernel
//                  is never interrupted, it polls while idle)
//   8. image       validate the boot image mkimage linked into .bootimage
//   9. tasks       start every program marked `start`, in system-description order
//  10. run         arm the clock and return into the first process

import CurioABI
import KernelArch
import KernelCore

/// The kernel core's state, in .bss; every trap works on it in place. (A computed
/// pointer, not a stored global: a global with an initializer costs a `swift_once`
/// check on every access.)
var kernel: UnsafeMutablePointer<Kernel<RISCVPlatform>> {
    UnsafeMutableRawPointer(kernel_state_storage())!.assumingMemoryBound(to: Kernel<RISCVPlatform>.self)
}

@_cdecl("kernel_main")
public func kernelMain(hart: UInt, deviceTreeAddress: UInt) -> Never {
    let console = KernelConsole()
    console.write("\nCurio: an Embedded Swift microkernel with server state regions\n")

    guard let deviceTreePointer = UnsafeRawPointer(bitPattern: deviceTreeAddress),
          let deviceTree = try? DeviceTree(deviceTreePointer),
          let ram = deviceTree.memory else {
        panic("no usable device tree")
    }
    let commandLine = UnsafeMutableRawBufferPointer(start: kernel_command_line_storage(),
                                                    count: kernel_command_line_capacity())
    var commandLineLength = 0
    if let arguments = deviceTree.bootArguments {
        commandLineLength = min(arguments.count, commandLine.count)
        commandLine.copyMemory(from: UnsafeRawBufferPointer(rebasing: arguments[0..<commandLineLength]))
    }

    let kernelEnd = UInt64(UInt(bitPattern: kernel_end_address()))
    let memory = IdentityMemory()
    var frames = FrameAllocator(memory: memory,
                                range: PhysicalAddress(kernelEnd)..<PhysicalAddress(ram.base + ram.size))
    let layout = KernelLayout(
        ram: PhysicalAddress(ram.base)..<PhysicalAddress(ram.base + ram.size),
        devices: PhysicalAddress(0)..<PhysicalAddress(0x4000_0000),
        textStart: PhysicalAddress(UInt64(UInt(bitPattern: kernel_text_start_address()))),
        textEnd: PhysicalAddress(UInt64(UInt(bitPattern: kernel_text_end_address()))),
        readOnlyEnd: PhysicalAddress(UInt64(UInt(bitPattern: kernel_data_start_address()))),
        kernelEnd: PhysicalAddress(kernelEnd))
    let kernelSpace: AddressSpace
    do {
        kernelSpace = try AddressSpace.createKernel(layout: layout, allocator: &frames)
    } catch {
        panic("cannot build the kernel page table")
    }
    let kernelRoot = kernelSpace.root
    let asidsWork = enablePaging(kernelSpace)

    csr_write_stvec(UInt64(UInt(bitPattern: trap_vector_address())))
    csr_write_sscratch(0)
    PLIC.initialize()
    csr_set_sie(Interrupts.supervisorTimer | Interrupts.supervisorExternal)

    let imageStart = UnsafeRawPointer(boot_image_start_address())!
    let imageBytes = UnsafeRawBufferPointer(start: imageStart,
                                            count: UnsafeRawPointer(boot_image_end_address())! - imageStart)
    let image: BootImage
    do {
        image = try BootImage(imageBytes)
    } catch {
        panic("the boot image is invalid")
    }
    console.write("memory: ")
    console.write(decimal: frames.freeFrames * pageSize / 1024)
    console.write(" KiB free, ")
    console.write(decimal: image.programCount)
    console.write(" programs in the boot image\n")

    let bootArguments = UnsafeRawBufferPointer(rebasing: commandLine[0..<commandLineLength])
    precondition(MemoryLayout<Kernel<RISCVPlatform>>.size <= kernel_state_storage_size())
    UnsafeMutableRawPointer(kernel_state_storage())!.bindMemory(to: Kernel<RISCVPlatform>.self, capacity: 1)
    kernel.initialize(to: Kernel(platform: RISCVPlatform(kernelRoot: kernelSpace, asidsWork: asidsWork),
                    frames: frames, image: image, kernelRoot: kernelRoot,
                    taskStorage: taskStorage(), registerStorage: registerStorage(),
                    bootArguments: bootArguments))
    kernel.pointee.startBootPrograms()
    trap_return(resumeCurrentProcess())
}

/// Turns on Sv39 with the kernel's table and reports whether ASIDs are implemented.
private func enablePaging(_ space: AddressSpace) -> Bool {
    csr_write_satp(space.satp(asid: 0xFFFF))
    let asidsWork = (csr_read_satp() >> 44) & 0xFFFF != 0
    csr_write_satp(space.satp(asid: 0))
    sfence_vma_all()
    return asidsWork
}

/// Storage for the task table and the register frames, outside any heap.
private func taskStorage() -> UnsafeMutablePointer<Task> {
    precondition(MemoryLayout<Task>.stride * Kernel<RISCVPlatform>.maxTasks <= kernel_task_storage_size())
    return UnsafeMutableRawPointer(kernel_task_storage()).bindMemory(to: Task.self,
                                                                     capacity: Kernel<RISCVPlatform>.maxTasks)
}

private func registerStorage() -> UnsafeMutablePointer<UInt64> {
    kernel_register_storage()
}

func panic(_ message: StaticString) -> Never {
    let console = KernelConsole()
    console.write("\n[kernel] PANIC: ")
    console.write(message)
    console.write("\n")
    PowerControl.powerOff(code: 100)
}
