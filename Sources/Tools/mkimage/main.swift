// mkimage: the command-line front of SystemImage.
//
//   mkimage --system system.toml --elf-dir DIR --out FILE [--list]
//           [--nm PATH] [--demangle PATH]
//       Checks the system description, reads <module>.elf for every program
//       from DIR with its symbols, and writes the boot image to FILE. --list
//       then prints the program table as read back from the written image, so
//       what is printed is what the kernel will see.
//
//   --without-ssr NAME,...  builds the named servers without server state regions
//       (no `ssr`, not restartable, a heap 160 x ssr KiB larger): the same binaries
//       then keep their clients' state in their own memory, the baseline the
//       benchmarks compare SSRs to.
//   --restart-without-ssr   with --without-ssr: the named servers stay restartable,
//       so a fault restarts them from the pristine image as MINIX 3's reincarnation
//       server restarts a driver — with every client's state gone, since it lived
//       in the crashed process. The baseline the fault campaigns compare SSRs to.
//
//   mkimage --symbolize FILE PROGRAM ADDRESS
//       Names the code at ADDRESS (decimal or 0x hex) in PROGRAM of image
//       FILE, the way the kernel does in a fault report.
//
// Errors go to standard error with the file name and line where there is one,
// and the exit status is 1 (2 for a usage error).

import Foundation
import KernelCore
import SystemImage

let usage = """
    usage: mkimage --system FILE --elf-dir DIR --out FILE [--list] [--nm PATH] [--demangle PATH]
                   [--without-ssr NAME,... [--restart-without-ssr]]
           mkimage --symbolize IMAGE PROGRAM ADDRESS
    """

func fail(_ message: String, status: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("mkimage: \(message)\n".utf8))
    exit(status)
}

func readFile(_ path: String) -> Data {
    guard let data = FileManager.default.contents(atPath: path) else { fail("cannot read \(path)") }
    return data
}

func parseAddress(_ text: String) -> UInt64? {
    text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
}

func kibibytes(pages: Int) -> String { "\(pages * SystemDescription.kibibytesPerPage)K" }

/// One row per program, columns padded to their widest cell.
func programTable(_ image: BootImage, _ system: SystemDescription) -> String {
    var rows = [["#", "name", "module", "prio", "flags", "memory", "stack", "heap", "sends", "irqs", "devices",
                 "elf bytes"]]
    for index in 0..<image.programCount {
        let program = image.program(index)
        let flags = [(program.startsAtBoot, "start"), (program.mayManage, "manage"),
                     (program.receivesBootArguments, "args")].filter(\.0).map(\.1)
        let sends = (0..<image.programCount).filter { program.sendMask >> UInt64($0) & 1 != 0 }
            .map { system.programs[$0].name }
        let devices = (0..<program.deviceCount).map { slot in
            let device = program.device(slot)
            return "0x\(String(device.base, radix: 16))+0x\(String(device.size, radix: 16))"
        }
        rows.append([
            "\(index)", program.name.withBytes { String(decoding: $0, as: UTF8.self) }, system.programs[index].module,
            "\(program.priority)", flags.isEmpty ? "-" : flags.joined(separator: ","),
            kibibytes(pages: program.memoryPages), kibibytes(pages: program.stackPages),
            kibibytes(pages: program.heapPages), sends.isEmpty ? "-" : sends.joined(separator: ","),
            program.interruptCount == 0 ? "-" : (0..<program.interruptCount).map { "\(program.interrupt($0))" }
                .joined(separator: ","),
            devices.isEmpty ? "-" : devices.joined(separator: ","), "\(image.elf(of: index).count)",
        ])
    }
    let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max()! }
    return rows.map { row in
        zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }
            .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
    }.joined(separator: "\n")
}

func symbolize(imagePath: String, program name: String, address text: String) {
    guard let address = parseAddress(text) else { fail("bad address '\(text)'", status: 2) }
    let bytes = readFile(imagePath)
    bytes.withUnsafeBytes { buffer in
        let image: BootImage
        do {
            image = try BootImage(buffer)
        } catch {
            fail("\(imagePath) is not a valid boot image: \(error)")
        }
        guard let program = Array(name.utf8).withUnsafeBytes({ image.index(of: $0) }) else {
            fail("no program '\(name)' in \(imagePath)")
        }
        guard let (symbol, offset) = image.symbolize(program: program, address: address) else {
            fail("no symbol at or below 0x\(String(address, radix: 16)) in '\(name)'")
        }
        print("\(String(decoding: symbol, as: UTF8.self))+0x\(String(offset, radix: 16))")
    }
}

func build(systemPath: String, elfDirectory: String, outputPath: String, list: Bool, tools: SymbolTools,
           withoutSSR: [String], restartWithoutSSR: Bool) {
    let text = String(decoding: readFile(systemPath), as: UTF8.self)
    var system: SystemDescription
    do {
        system = try SystemDescription(parsing: text)
    } catch {
        fail("\(systemPath):\(error.line): \(error.message)")
    }
    for name in withoutSSR {
        guard let index = system.programs.firstIndex(where: { $0.name == name }) else {
            fail("--without-ssr: no program '\(name)' in \(systemPath)")
        }
        // The SSRServer runtime then keeps a table of every client's state, an entry per
        // task slot (320), in the server's heap: room for it, from the budget the regions
        // no longer take from the clients. A state fits twice in its region (SSRFormat
        // commits two copies), so an entry takes at most half the region and 160 x ssr
        // KiB always suffice. (16 x ssr did for the timer, whose 320 entries need some 46
        // KiB, but not for net: its 2 KiB states need 645 KiB, and the 128 KiB it was
        // given left its connections 517 KiB short of the SSR build's heap.)
        let tableKiB = 160 * system.programs[index].ssrKiB
        system.programs[index].heapKiB += tableKiB
        system.programs[index].memoryKiB += tableKiB
        system.programs[index].ssrKiB = 0
        system.programs[index].restartable = restartWithoutSSR
    }
    let imageBytes: [UInt8]
    do {
        imageBytes = try ImageWriter.makeImage(system: system, elfDirectory: elfDirectory, tools: tools)
    } catch {
        fail(error.description)
    }
    do {
        try Data(imageBytes).write(to: URL(fileURLWithPath: outputPath), options: .atomic)
    } catch {
        fail("cannot write \(outputPath): \(error.localizedDescription)")
    }
    guard list else { return }
    imageBytes.withUnsafeBytes { buffer in
        do {
            print(programTable(try BootImage(buffer), system))
        } catch {
            fail("the written image does not read back: \(error)")
        }
    }
}

var arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "--symbolize" {
    guard arguments.count == 4 else { fail(usage, status: 2) }
    symbolize(imagePath: arguments[1], program: arguments[2], address: arguments[3])
} else {
    var options: [String: String] = [:]
    var list = false
    var restartWithoutSSR = false
    while let option = arguments.first {
        arguments.removeFirst()
        if option == "--list" {
            list = true
        } else if option == "--restart-without-ssr" {
            restartWithoutSSR = true
        } else if ["--system", "--elf-dir", "--out", "--nm", "--demangle", "--without-ssr"].contains(option), let value = arguments.first {
            arguments.removeFirst()
            options[option] = value
        } else {
            fail("unexpected argument '\(option)'\n\(usage)", status: 2)
        }
    }
    guard let systemPath = options["--system"], let elfDirectory = options["--elf-dir"],
          let outputPath = options["--out"]
    else { fail(usage, status: 2) }
    let defaults = SymbolTools()
    build(systemPath: systemPath, elfDirectory: elfDirectory, outputPath: outputPath, list: list,
          tools: SymbolTools(nm: options["--nm"] ?? defaults.nm, demangler: options["--demangle"] ?? defaults.demangler),
          withoutSSR: options["--without-ssr"].map { $0.split(separator: ",").map(String.init) } ?? [],
          restartWithoutSSR: restartWithoutSSR)
}
