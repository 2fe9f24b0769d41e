// The `autotune` command-line tool: every registered kernel family, from `KernelFamilies`.
import AutotuneCLI
import TunedKernels

AutotuneCommand<KernelFamilies>.main()
