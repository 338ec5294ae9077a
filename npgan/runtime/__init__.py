"""Machine tuning and run safety, outside the engine: BLAS thread policy, malloc policy, run lock, signal
handling and data-parallel training over MPI. The CLI, the Trainer and the benchmarks switch it on; ``import
npgan`` alone changes no process-wide setting."""
