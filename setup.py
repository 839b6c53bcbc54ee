"""Setup script of the janusvln_ros ament_python package (colcon and pip)."""

from glob import glob

from setuptools import find_packages, setup

package_name = 'janusvln_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'bench', 'bench.*']),
    package_data={package_name: ['data/*.json', 'data/navigator/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml')
         + glob('config/*.jinja') + glob('config/*.txt') + glob('config/*.sdf')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='janusvln_ros maintainers',
    maintainer_email='maintainers@janusvln-ros.dev',
    description='JanusVLN vision-and-language navigation as a ROS 2 node.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'janusvln_node = janusvln_ros.ros.janusvln_node:main',
            'sim_bridge_node = janusvln_ros.sim.bridge_node:main',
            'janusvln = janusvln_ros.cli:main',
        ],
    },
)
